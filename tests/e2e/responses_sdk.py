"""The official openai SDK's Responses API with the file_search tool against nfai, unchanged.

Usage: responses_sdk.py BASE_URL. Prints each answer with its citations, then OK when every check
passed.
"""

import sys

import openai
from openai import OpenAI

client = OpenAI(base_url=sys.argv[1], api_key="unused", max_retries=0)
MODEL = "smollm2-135m-instruct"

DOCS = {
    "customer-an.txt": "Khách hàng Nguyễn Văn An (mã KH-1042) sống ở Hà Nội; hợp đồng bảo trì được gia hạn ngày 15 tháng 3.",
    "ticket-887.txt": "Phiếu hỗ trợ 887: khách hàng Trần Thị Bình báo lỗi đăng nhập; đội hỗ trợ đã xử lý xong vào thứ Hai.",
    "deal-d311.txt": "Deal D-311 with Acme Logistics is worth 45,000 USD and is expected to close in June. Owner: Minh.",
}

store = client.vector_stores.create(name="crm-sdk")
file_ids = set()
for name, text in DOCS.items():
    f = client.vector_stores.files.upload_and_poll(
        vector_store_id=store.id, file=(name, text.encode(), "text/plain")
    )
    assert f.status == "completed", f
    file_ids.add(f.id)

TOOLS = [{"type": "file_search", "vector_store_ids": [store.id], "max_num_results": 3}]


def check_cited(response, first_filename=None, with_results=True):
    # A small model may be cut by max_output_tokens.
    assert response.status in ("completed", "incomplete"), response
    if response.status == "incomplete":
        assert response.incomplete_details.reason == "max_output_tokens", response
    call, message = response.output
    assert call.type == "file_search_call" and call.status == "completed", call
    if not with_results:
        assert call.results is None, call
        call.results = []
    assert call.results or not with_results, call
    if first_filename:
        assert call.results[0].filename == first_filename, call.results
    assert all(r.file_id in file_ids for r in call.results), call.results
    assert message.type == "message" and message.role == "assistant", message
    text = message.content[0]
    assert text.type == "output_text", text
    assert response.output_text == text.text
    assert text.annotations, text
    for a in text.annotations:
        assert a.type == "file_citation" and a.file_id in file_ids, a
        assert 0 <= a.index <= len(text.text), (a, len(text.text))
    print(repr(response.output_text), [(a.index, a.filename) for a in text.annotations])
    return message


# Not streamed, in Vietnamese.
question = "Khách hàng Nguyễn Văn An sống ở thành phố nào?"
r = client.responses.create(
    model=MODEL,
    input=question,
    instructions="Answer in one short sentence.",
    tools=TOOLS,
    include=["file_search_call.results"],
    max_output_tokens=64,
    temperature=0,
)
assert r.id.startswith("resp_") and r.object == "response", r
check_cited(r, "customer-an.txt")
assert r.output[0].queries == [question]
assert r.usage.input_tokens > 0 and r.usage.output_tokens > 0
assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens

# Streamed, in English, continuing the first response.
events = []
with client.responses.create(
    model=MODEL,
    input=[{"role": "user", "content": [{"type": "input_text", "text": "What is deal D-311 worth?"}]}],
    tools=TOOLS,
    include=["file_search_call.results"],
    previous_response_id=r.id,
    max_output_tokens=64,
    temperature=0,
    stream=True,
) as stream:
    for event in stream:
        events.append(event)
assert [e.sequence_number for e in events] == list(range(len(events)))
types = [e.type for e in events]
assert types[:2] == ["response.created", "response.in_progress"], types
assert types[-1] in ("response.completed", "response.incomplete"), types
assert "response.file_search_call.searching" in types
assert "response.output_text.annotation.added" in types
deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
streamed = events[-1].response
assert streamed.previous_response_id == r.id
message = check_cited(streamed)
assert deltas == streamed.output_text, (deltas, streamed.output_text)

# The streaming helper of the SDK parses the same events.
with client.responses.stream(
    model=MODEL, input="Ai báo lỗi đăng nhập?", tools=TOOLS, max_output_tokens=48, temperature=0
) as helper:
    last = None
    for event in helper:
        last = event
    # get_final_response needs response.completed; a cut answer ends with response.incomplete.
    final = helper.get_final_response() if last.type == "response.completed" else last.response
check_cited(final, with_results=False)

# Stored responses: retrieve and delete.
got = client.responses.retrieve(r.id)
assert got.id == r.id and got.output_text == r.output_text, got
assert client.responses.retrieve(streamed.id).output_text == streamed.output_text
deleted = client.responses.delete(r.id)
try:
    client.responses.retrieve(r.id)
    raise AssertionError("a deleted response was found")
except openai.NotFoundError:
    pass

# Refusals.
try:
    client.responses.create(
        model=MODEL, input="x", tools=[{"type": "file_search", "vector_store_ids": ["vs_missing"]}]
    )
    raise AssertionError("an unknown vector store was accepted")
except openai.NotFoundError as e:
    assert "vs_missing" in str(e), e
try:
    client.responses.create(model=MODEL, input="x", tools=[{"type": "web_search_preview"}])
    raise AssertionError("an unknown tool type was accepted")
except openai.BadRequestError as e:
    assert e.body["param"] == "tools[0].type", e.body
try:
    client.responses.create(model="multilingual-e5-small", input="x", tools=TOOLS)
    raise AssertionError("an embedding model answered")
except openai.BadRequestError as e:
    assert e.body["param"] == "model", e.body

print("OK")
