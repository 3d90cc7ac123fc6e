"""Tool calls and structured outputs against nfai with the official openai SDK and
langchain-openai. Usage: structured_sdk.py BASE_URL (…/v1). Prints OK when every check passes."""

import json
import sys

from openai import OpenAI

BASE = sys.argv[1]
MODEL = "smollm2-135m-instruct"
client = OpenAI(base_url=BASE, api_key="unused")

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_order_status",
            "description": "Look up where an order is.",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "integer", "minimum": 1, "maximum": 99999999}},
                "required": ["order_id"],
                "additionalProperties": False,
            },
        },
    }
]
NAMED = {"type": "function", "function": {"name": "get_order_status"}}
messages = [{"role": "user", "content": "Where is my order 4521?"}]

# 1. The model calls the tool (a named tool_choice makes it).
first = client.chat.completions.create(
    model=MODEL, messages=messages, tools=TOOLS, tool_choice=NAMED, temperature=0, max_tokens=40
)
choice = first.choices[0]
assert choice.finish_reason == "tool_calls", choice
call = choice.message.tool_calls[0]
assert call.function.name == "get_order_status", call
args = json.loads(call.function.arguments)
assert isinstance(args["order_id"], int), args

# 2. The tool's result goes back; the model answers in text.
messages.append(choice.message.model_dump(exclude_none=True))
messages.append({"role": "tool", "tool_call_id": call.id, "content": "Shipped; arrives Friday."})
second = client.chat.completions.create(
    model=MODEL, messages=messages, tools=TOOLS, tool_choice="none", temperature=0, max_tokens=30
)
assert second.choices[0].message.content, second
assert not second.choices[0].message.tool_calls

# 3. Streamed: the SDK's chunks carry the call.
stream = client.chat.completions.create(
    model=MODEL,
    messages=messages[:1],
    tools=TOOLS,
    tool_choice="required",
    temperature=1,
    seed=4,
    max_tokens=40,
    stream=True,
)
name, arguments, finish = "", "", None
for chunk in stream:
    for c in chunk.choices:
        for tc in c.delta.tool_calls or []:
            name += tc.function.name or ""
            arguments += tc.function.arguments or ""
        finish = c.finish_reason or finish
if finish == "tool_calls":
    assert name == "get_order_status", name
    assert isinstance(json.loads(arguments)["order_id"], int), arguments
else:
    assert finish == "length", finish

# 3b. parallel_tool_calls: one answer may make several calls, each distinct call once.
many = client.chat.completions.create(
    model=MODEL,
    messages=[{"role": "user", "content": "Đơn hàng 4521 và 4522 của tôi đâu rồi?"}],
    tools=TOOLS,
    tool_choice="required",
    parallel_tool_calls=True,
    temperature=0,
    max_tokens=120,
)
choice = many.choices[0]
assert choice.finish_reason == "tool_calls", choice
calls = choice.message.tool_calls
args = [json.loads(c.function.arguments) for c in calls]
# SmolLM2 repeats its call rather than ending: the answer ends at the repeat, which is dropped.
assert calls and len({c.id for c in calls}) == len(calls), calls
assert all(isinstance(a["order_id"], int) for a in args), args
assert all(a != b for i, a in enumerate(args) for b in args[i + 1 :]), args
# Unsent, an answer makes one call.
one = client.chat.completions.create(
    model=MODEL, messages=[{"role": "user", "content": "Đơn hàng 4521 và 4522 của tôi đâu rồi?"}],
    tools=TOOLS, tool_choice="required", temperature=0, max_tokens=120,
)
assert one.choices[0].finish_reason == "tool_calls" and len(one.choices[0].message.tool_calls) == 1, one

# 4. response_format with a strict JSON Schema.
schema = {
    "type": "object",
    "properties": {"intent": {"enum": ["delivery", "refund", "other"]}, "urgent": {"type": "boolean"}},
    "required": ["intent", "urgent"],
    "additionalProperties": False,
}
r = client.chat.completions.create(
    model=MODEL,
    messages=[{"role": "user", "content": "My order is late, I need it today!"}],
    response_format={"type": "json_schema", "json_schema": {"name": "ticket", "schema": schema, "strict": True}},
    temperature=0,
    max_tokens=30,
)
if r.choices[0].finish_reason == "stop":
    v = json.loads(r.choices[0].message.content)
    assert v["intent"] in ("delivery", "refund", "other") and isinstance(v["urgent"], bool), v

# 5. langchain-openai: bind_tools and with_structured_output.
from langchain_openai import ChatOpenAI  # noqa: E402
from typing import Literal  # noqa: E402

from pydantic import BaseModel, Field  # noqa: E402


class GetOrderStatus(BaseModel):
    """Look up where an order is."""

    order_id: int = Field(description="The order number", ge=1, le=99_999_999)


class Ticket(BaseModel):
    intent: Literal["delivery", "refund", "other"]
    urgent: bool


llm = ChatOpenAI(model=MODEL, base_url=BASE, api_key="unused", temperature=0, max_tokens=60)
msg = llm.bind_tools([GetOrderStatus], tool_choice="GetOrderStatus").invoke("Where is order 4521?")
assert msg.tool_calls, msg
assert msg.tool_calls[0]["name"] == "GetOrderStatus", msg.tool_calls
assert isinstance(msg.tool_calls[0]["args"]["order_id"], int), msg.tool_calls

for method in ("json_schema", "function_calling"):
    structured = llm.with_structured_output(Ticket, method=method)
    prompt = "Classify: 'My parcel is late, I need it today!' Answer as JSON with intent and urgent."
    t = structured.invoke(prompt)
    assert isinstance(t, Ticket), (method, t)

print("OK")
