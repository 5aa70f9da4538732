"""Drives Quarry's OpenAI-compatible endpoints with the official `openai`
package, as a user would, and prints what it saw as one JSON object for
tests/e2e/http.rs to check. Usage: python openai_client.py BASE_URL KEY"""

import json
import sys

from openai import OpenAI

base, key = sys.argv[1], sys.argv[2]
client = OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=120,
                _strict_response_validation=True)
out = {}

out["models"] = [m.id for m in client.models.list().data]

question = [{"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "What does the river otter eat?"}]
done = client.chat.completions.create(
    model="docs", messages=question, extra_body={"quarry": {"answer_mode": "extractive"}})
out["completion"] = {
    "content": done.choices[0].message.content,
    "finish_reason": done.choices[0].finish_reason,
    "usage": done.usage.total_tokens if done.usage else None,
    "quarry": done.model_extra.get("quarry"),
}

chunks = client.chat.completions.create(
    model="docs", messages=question, stream=True, max_tokens=120,
    stream_options={"include_usage": True})
text, finish, usage, extras = "", None, None, []
for chunk in chunks:
    if chunk.model_extra and chunk.model_extra.get("quarry"):
        extras.append(chunk.model_extra["quarry"])
    if chunk.choices:
        delta = chunk.choices[0].delta
        if delta.content:
            text += delta.content
        if chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason
    if chunk.usage:
        usage = chunk.usage.total_tokens
out["stream"] = {"content": text, "finish_reason": finish, "usage": usage, "quarry": extras}

# Embeddings with the client as users create it: it asks for base64 by
# default and decodes it (its strict mode would validate the base64 text
# against the float list type before decoding, so it is not used here).
plain = OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=120)
texts = ["granite is an igneous rock", "otters eat fish"]
out["embeddings_base64"] = [list(d.embedding) for d in plain.embeddings.create(
    model="any", input=texts).data]
out["embeddings_float"] = [d.embedding for d in client.embeddings.create(
    model="any", input=texts, encoding_format="float").data]

try:
    client.chat.completions.create(model="docs", messages=question, n=2)
    out["refused"] = None
except Exception as e:  # the client's APIStatusError
    out["refused"] = {"status": getattr(e, "status_code", None), "message": str(e)}

print(json.dumps(out))
