//! Real providers' wire behaviour, reproduced: `OpenAI`'s 400s for `max_tokens` and `temperature` on
//! reasoning models and the one adjusted retry; reasoning streamed as `delta.reasoning_content`
//! (`DashScope`, `DeepSeek`, vLLM) and `delta.reasoning` (`OpenRouter`), with `OpenRouter`'s
//! `: OPENROUTER PROCESSING` comments; an error object arriving mid-stream with status 200;
//! provider parameters, headers, and `.prompt.yml` prompt files.

mod adjusted_retry;
mod params_and_headers;
mod prompt_files;
mod reasoning;
