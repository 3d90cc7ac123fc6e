"""Drives nfai with the official `openai` Python package. Exits non-zero on the first failure.

Usage: python openai_sdk.py <base url, e.g. http://127.0.0.1:8080/v1>
"""

import base64
import math
import struct
import sys

import openai
from openai import OpenAI

client = OpenAI(base_url=sys.argv[1], api_key="unused", max_retries=0)

models = client.models.list()
ids = {m.id for m in models.data}
assert {"smollm2-135m-instruct", "gemma-3-270m", "all-minilm-l6-v2", "multilingual-e5-small"} <= ids, ids
assert client.models.retrieve("gemma-3-270m").id == "gemma-3-270m"

chat = client.chat.completions.create(
    model="default",
    messages=[{"role": "user", "content": "Say hello to a customer."}],
    max_tokens=12,
    temperature=0,
)
assert chat.object == "chat.completion"
assert chat.choices[0].message.role == "assistant"
assert isinstance(chat.choices[0].message.content, str)
assert chat.choices[0].finish_reason in ("stop", "length")
assert chat.usage.total_tokens == chat.usage.prompt_tokens + chat.usage.completion_tokens

stream = client.chat.completions.create(
    model="default",
    messages=[{"role": "user", "content": "Say hello to a customer."}],
    max_tokens=12,
    temperature=0,
    stream=True,
    stream_options={"include_usage": True},
)
text, usage, finish = "", None, None
for chunk in stream:
    if chunk.usage is not None:
        usage = chunk.usage
    for choice in chunk.choices:
        text += choice.delta.content or ""
        finish = choice.finish_reason or finish
assert text == chat.choices[0].message.content, (text, chat.choices[0].message.content)
assert finish == chat.choices[0].finish_reason
assert usage is not None and usage.completion_tokens == chat.usage.completion_tokens

completion = client.completions.create(
    model="gemma-3-270m", prompt="The capital of France is", max_tokens=8, temperature=0
)
assert completion.object == "text_completion"
assert len(completion.choices) == 1 and isinstance(completion.choices[0].text, str)

emb = client.embeddings.create(
    model="all-minilm-l6-v2",
    input=["The cat sits on the mat", "A cat is sitting on a mat"],
)
a, b = (d.embedding for d in emb.data)
assert len(a) == 384
cos = sum(x * y for x, y in zip(a, b))
assert cos > 0.9, cos
# The SDK asks for base64 by default when numpy is absent or present; check it decodes the same.
raw = client.embeddings.create(model="all-minilm-l6-v2", input="hello", encoding_format="base64")
vec = raw.data[0].embedding
if isinstance(vec, str):
    vec = list(struct.unpack("<384f", base64.b64decode(vec)))
assert abs(math.sqrt(sum(x * x for x in vec)) - 1.0) < 1e-4

try:
    client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    raise AssertionError("expected NotFoundError")
except openai.NotFoundError as e:
    assert e.status_code == 404 and e.body["code"] == "model_not_found", e.body

try:
    client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "x"}], temperature=9
    )
    raise AssertionError("expected BadRequestError")
except openai.BadRequestError as e:
    assert e.body["param"] == "temperature", e.body

# A base model without a chat template serves completions, and refuses chat by name.
try:
    client.chat.completions.create(
        model="gemma-3-270m", messages=[{"role": "user", "content": "x"}], max_tokens=2
    )
    raise AssertionError("expected BadRequestError")
except openai.BadRequestError as e:
    assert "chat template" in e.body["message"], e.body

vi = client.embeddings.create(
    model="multilingual-e5-small", input="Khách hàng hỏi về đơn hàng số 4521"
)
assert len(vi.data[0].embedding) == 384

print("openai SDK", openai.__version__, "OK")
