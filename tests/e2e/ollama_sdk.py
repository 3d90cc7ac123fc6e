"""Drives nfai's Ollama API with the official `ollama` package.

Usage: ollama_sdk.py BASE_URL CHAT_MODEL EMBED_MODEL; prints OK when every check passed.
"""

import sys

import ollama

base, chat_model, embed_model = sys.argv[1], sys.argv[2], sys.argv[3]
client = ollama.Client(host=base)
opts = {"temperature": 0, "num_predict": 8}
msgs = [{"role": "user", "content": "Say hello to a customer."}]

reply = client.chat(model=chat_model, messages=msgs, options=opts)
assert reply.done and reply.message.role == "assistant", reply
assert reply.message.content, reply
assert reply.done_reason in ("stop", "length"), reply
assert reply.eval_count and reply.eval_count <= 8, reply
print("chat:", repr(reply.message.content))

parts = list(client.chat(model=chat_model, messages=msgs, options=opts, stream=True, keep_alive="5m"))
assert parts[-1].done and not any(p.done for p in parts[:-1]), parts
streamed = "".join(p.message.content for p in parts)
assert streamed == reply.message.content, (streamed, reply.message.content)

gen = client.generate(model=chat_model, prompt="The capital of France is", options=opts)
assert gen.done and gen.response, gen
raw = list(client.generate(model=chat_model, prompt="The capital of France is", options=opts, raw=True, stream=True))
assert raw[-1].done and "".join(p.response for p in raw), raw
print("generate:", repr(gen.response))

emb = client.embed(model=embed_model, input=["The cat sits on the mat", "A dog"])
assert len(emb.embeddings) == 2 and len(emb.embeddings[0]) == 384, len(emb.embeddings)
one = client.embeddings(model=embed_model, prompt="The cat sits on the mat")
assert len(one.embedding) == 384
assert abs(one.embedding[0] - emb.embeddings[0][0]) < 1e-5

names = [m.model for m in client.list().models]
assert chat_model in names and embed_model in names, names
running = [m.model for m in client.ps().models]
assert chat_model in running, running
print("list:", names, "ps:", running)

try:
    client.chat(model="no-such-model", messages=msgs)
    raise AssertionError("expected an error")
except ollama.ResponseError as e:
    assert e.status_code == 404, e
    assert "no-such-model" in str(e.error), e.error

print("OK")
