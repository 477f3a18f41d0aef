"""An ordinary Python client using `requests` against the OpenAI REST API: trust from REQUESTS_CA_BUNDLE
(as set in the environment), key from OPENAI_API_KEY. Nothing here knows about aigress.

Usage: python3 requests_app.py chat|stream MODEL PROMPT  -> prints {"id","model","content","usage"} as JSON
"""
import json
import os
import sys

import requests

mode, model, prompt = sys.argv[1:4]
url = "https://api.openai.com/v1/chat/completions"
headers = {"Authorization": "Bearer " + os.environ["OPENAI_API_KEY"]}
body = {"model": model, "messages": [{"role": "user", "content": prompt}]}

if mode == "chat":
    r = requests.post(url, headers=headers, json=body, timeout=30)
    r.raise_for_status()
    data = r.json()
    print(json.dumps({"id": data["id"], "model": data["model"],
                      "content": data["choices"][0]["message"]["content"], "usage": data["usage"]}))
elif mode == "stream":
    body.update(stream=True, stream_options={"include_usage": True})
    content, usage, chunk_id = "", None, None
    with requests.post(url, headers=headers, json=body, stream=True, timeout=30) as r:
        r.raise_for_status()
        for line in r.iter_lines(decode_unicode=True):
            if not line or not line.startswith("data: "):
                continue
            payload = line[len("data: "):]
            if payload == "[DONE]":
                break
            chunk = json.loads(payload)
            chunk_id = chunk["id"]
            if chunk.get("usage"):
                usage = chunk["usage"]
            for choice in chunk["choices"]:
                content += choice["delta"].get("content") or ""
    print(json.dumps({"id": chunk_id, "model": model, "content": content, "usage": usage}))
else:
    sys.exit("usage: requests_app.py chat|stream MODEL PROMPT (got mode %s)" % mode)
