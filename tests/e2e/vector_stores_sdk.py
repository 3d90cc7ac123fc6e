"""The official openai SDK against nfai's Files and Vector Stores API, unchanged.

Usage: vector_stores_sdk.py BASE_URL. Prints OK when every check passed.
"""

import sys
import unicodedata

import openai
from openai import OpenAI

client = OpenAI(base_url=sys.argv[1], api_key="unused", max_retries=0)

VI = "Đơn hàng số 4521 của khách hàng Nguyễn Văn An sẽ được giao vào thứ Sáu tuần này tại Hà Nội."
VI_REFUND = "Chính sách hoàn tiền: khách hàng được hoàn tiền trong vòng ba mươi ngày nếu sản phẩm bị lỗi."
EN = "Invoice 1234 was paid late by the customer; a reminder email was sent on Monday."
EN_SHIP = "Shipping to Da Nang takes three business days with our standard courier."

# Files
vi_file = client.files.create(file=("delivery-vi.txt", VI.encode(), "text/plain"), purpose="assistants")
assert vi_file.object == "file" and vi_file.bytes == len(VI.encode()), vi_file
assert vi_file.filename == "delivery-vi.txt"
assert client.files.retrieve(vi_file.id).id == vi_file.id
assert client.files.content(vi_file.id).read() == VI.encode()
assert any(f.id == vi_file.id for f in client.files.list(purpose="assistants"))

# A store with one file attached at creation, then more attached and polled.
store = client.vector_stores.create(name="crm-notes", metadata={"team": "support"})
assert store.object == "vector_store" and store.name == "crm-notes", store
vsf = client.vector_stores.files.create_and_poll(
    file_id=vi_file.id, vector_store_id=store.id, attributes={"lang": "vi", "year": 2024}
)
assert vsf.status == "completed", vsf
assert vsf.attributes == {"lang": "vi", "year": 2024}, vsf.attributes
en = client.vector_stores.files.upload_and_poll(
    vector_store_id=store.id,
    file=("invoice-en.txt", EN.encode(), "text/plain"),
    attributes={"lang": "en", "year": 2023},
)
assert en.status == "completed", en
refund = client.files.create(file=("refund-vi.md", VI_REFUND.encode(), "text/markdown"), purpose="assistants")
ship = client.files.create(file=("ship-en.txt", EN_SHIP.encode(), "text/plain"), purpose="assistants")
batch = client.vector_stores.file_batches.create_and_poll(
    vector_store_id=store.id,
    file_ids=[refund.id, ship.id],
    attributes={"lang": "mixed", "year": 2025},
)
assert batch.status == "completed" and batch.file_counts.completed == 2, batch
batch_files = list(client.vector_stores.file_batches.list_files(batch.id, vector_store_id=store.id))
assert sorted(f.id for f in batch_files) == sorted([refund.id, ship.id])

store = client.vector_stores.retrieve(store.id)
assert store.file_counts.completed == 4 and store.file_counts.total == 4, store.file_counts
assert store.usage_bytes > 0 and store.status == "completed", store

# Search: Vietnamese and English, with filters.
page = client.vector_stores.search(store.id, query="Khi nào đơn hàng 4521 được giao?", max_num_results=2)
results = list(page)
assert results[0].file_id == vi_file.id, results
assert results[0].content[0].type == "text" and "4521" in results[0].content[0].text
assert results[0].score >= results[-1].score
nfd = unicodedata.normalize("NFD", "Khi nào đơn hàng 4521 được giao?")
assert [r.file_id for r in client.vector_stores.search(store.id, query=nfd, max_num_results=2)] == [
    r.file_id for r in results
]
en_only = list(
    client.vector_stores.search(
        store.id,
        query="late invoice payment",
        filters={"type": "eq", "key": "lang", "value": "en"},
    )
)
assert en_only and all(r.attributes["lang"] == "en" for r in en_only), en_only
assert en_only[0].file_id == en.id
recent = list(
    client.vector_stores.search(
        store.id,
        query=["hoàn tiền", "refund"],
        filters={
            "type": "and",
            "filters": [
                {"type": "gte", "key": "year", "value": 2024},
                {"type": "ne", "key": "lang", "value": "en"},
            ],
        },
        max_num_results=10,
    )
)
assert recent and all(r.attributes["year"] >= 2024 for r in recent), recent
assert {r.file_id for r in recent} <= {vi_file.id, refund.id, ship.id}
none = list(
    client.vector_stores.search(
        store.id, query="x", filters={"type": "in", "key": "lang", "value": ["fr", "de"]}
    )
)
assert none == [], none

try:
    client.vector_stores.search(store.id, query="x", filters={"type": "eq", "key": "region", "value": "north"})
    raise AssertionError("a filter on an unknown attribute was accepted")
except openai.BadRequestError as e:
    assert "region" in str(e), e
try:
    client.vector_stores.search(store.id, query="x", rewrite_query=True)
    raise AssertionError("rewrite_query was accepted")
except openai.BadRequestError as e:
    assert e.body["param"] == "rewrite_query", e.body

# Updates.
updated = client.vector_stores.files.update(en.id, vector_store_id=store.id, attributes={"lang": "en", "year": 2026})
assert updated.attributes["year"] == 2026
polled = client.vector_stores.files.poll(en.id, vector_store_id=store.id, poll_interval_ms=100)
assert polled.status == "completed", polled
hits = list(client.vector_stores.search(store.id, query="invoice", filters={"type": "eq", "key": "year", "value": 2026}))
assert hits and hits[0].file_id == en.id, hits
store = client.vector_stores.update(store.id, name="crm-notes-2", metadata={"team": "sales"})
assert store.name == "crm-notes-2" and store.metadata == {"team": "sales"}, store
content = list(client.vector_stores.files.content(vi_file.id, vector_store_id=store.id))
assert content[0].text == VI, content

# Lists paginate.
files_page = client.vector_stores.files.list(vector_store_id=store.id, limit=2, order="asc")
assert len(files_page.data) == 2 and files_page.has_more
all_ids = [f.id for f in client.vector_stores.files.list(vector_store_id=store.id, limit=2)]
assert len(all_ids) == 4 and len(set(all_ids)) == 4, all_ids
assert any(s.id == store.id for s in client.vector_stores.list())

# Deletes and 404s.
deleted = client.vector_stores.files.delete(ship.id, vector_store_id=store.id)
assert deleted.deleted
try:
    client.vector_stores.files.retrieve(ship.id, vector_store_id=store.id)
    raise AssertionError("a deleted store file was found")
except openai.NotFoundError:
    pass
after = list(client.vector_stores.search(store.id, query="Shipping to Da Nang", max_num_results=50))
assert all(r.file_id != ship.id for r in after), after
assert client.files.delete(ship.id).deleted
for call in (
    lambda: client.files.retrieve(ship.id),
    lambda: client.vector_stores.retrieve("vs_doesnotexist"),
    lambda: client.vector_stores.search("vs_doesnotexist", query="x"),
    lambda: client.vector_stores.file_batches.retrieve("vsfb_nope", vector_store_id=store.id),
):
    try:
        call()
        raise AssertionError("an unknown id was found")
    except openai.NotFoundError:
        pass
assert client.vector_stores.delete(store.id).deleted
try:
    client.vector_stores.retrieve(store.id)
    raise AssertionError("a deleted store was found")
except openai.NotFoundError:
    pass

print("OK")
