"""The official `openai` package over HTTPS: trusts nfai's certificate through the CA given,
and fails to connect without it. Args: base URL, CA file, API key. Prints OK when done."""

import ssl
import sys

import openai
from openai import OpenAI

base, ca, key = sys.argv[1], sys.argv[2], sys.argv[3]

ctx = ssl.create_default_context(cafile=ca)
client = OpenAI(base_url=base, api_key=key, max_retries=0,
                http_client=openai.DefaultHttpxClient(verify=ctx))
ids = [m.id for m in client.models.list()]
assert "smollm2-135m-instruct" in ids, ids
reply = client.chat.completions.create(
    model="smollm2-135m-instruct",
    messages=[{"role": "user", "content": "Hello"}],
    max_tokens=4,
    temperature=0,
)
assert reply.usage.completion_tokens >= 1, reply
raw = client.models.with_raw_response.list()
print("http version:", raw.http_response.http_version)

untrusting = OpenAI(base_url=base, api_key=key, max_retries=0)
try:
    untrusting.models.list()
    raise SystemExit("a client without the CA connected")
except openai.APIConnectionError:
    pass

wrong_key = OpenAI(base_url=base, api_key="nfai-wrong", max_retries=0,
                   http_client=openai.DefaultHttpxClient(verify=ctx))
try:
    wrong_key.models.list()
    raise SystemExit("a wrong key was accepted")
except openai.AuthenticationError as e:
    assert e.status_code == 401

print("OK")
