"""The LLM generator and the chat client the assistant commands share (docs/clinic-notes.md).

    client.py     one chat completion over plain HTTP (OpenAI-compatible API), LlmUnavailable on failure
    prompts.py    what the model is asked: built-in statements with short segment aliases
    parse.py      the answer → sentences with what they cite, per section heading
    verify.py     the check after generation: unknown ids, numbers/drugs/doses not in the cited segments
    generator.py  requests in parts, fallback to the built-in note
"""
