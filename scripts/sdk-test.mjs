// Acceptance test: the Qwen Code SDK (npm @qwen-code/sdk, pinned by scripts/sdk-test.sh) drives
// qwen (`pathToQwenExecutable`) against local servers. Prints `N passed, M failed`; exit 1 on any
// failure. Usage: node sdk-test.mjs QWEN_BINARY (with NODE_PATH naming the SDK's node_modules).
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(path.join(process.env.SDK_DIR, 'package.json'));
const { query } = await import(require.resolve('@qwen-code/sdk'));

const qwen = process.argv[2];
const home = fs.mkdtempSync(path.join(os.tmpdir(), 'qwen-sdk-home-'));
const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'qwen-sdk-cwd-'));

// A chat server that answers `seen N: LAST` (N = the messages it was sent), streamed as SSE.
function server(status) {
  return new Promise((resolve) => {
    const s = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        if (status !== 200) {
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: { message: 'no such key', type: 'invalid_request_error' } }));
          return;
        }
        const messages = JSON.parse(body).messages;
        const last = messages[messages.length - 1].content;
        const text = `seen ${messages.length}: ${last}`;
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        const chunk = (delta, finish) =>
          `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', model: 'echo', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
        res.write(chunk({ role: 'assistant', content: text }, null));
        res.write(chunk({}, 'stop'));
        res.end('data: [DONE]\n\n');
      });
    });
    s.listen(0, '127.0.0.1', () => resolve(s));
  });
}

const ok = await server(200);
const failing = await server(401);
const url = (s) => `http://127.0.0.1:${s.address().port}/v1`;
const env = (s) => ({ HOME: home, PATH: process.env.PATH ?? '', OPENAI_API_KEY: 'sk-sdk-test-0000', OPENAI_BASE_URL: url(s) });
const options = (s, extra = {}) => ({ pathToQwenExecutable: qwen, cwd, env: env(s), ...extra });

async function collect(q) {
  const out = [];
  for await (const m of q) out.push(m);
  return out;
}
const text = (m) => m.message.content.filter((b) => b.type === 'text').map((b) => b.text).join('');

let passed = 0;
let failed = 0;
async function check(name, fn) {
  try {
    await fn();
    passed += 1;
    console.log(`ok   ${name}`);
  } catch (e) {
    failed += 1;
    console.log(`FAIL ${name}: ${e?.stack ?? e}`);
  }
}
function assert(cond, what) {
  if (!cond) throw new Error(what);
}

await check('single turn yields system, assistant, result', async () => {
  const messages = await collect(query({ prompt: 'hello', options: options(ok) }));
  const types = messages.map((m) => m.type);
  assert(JSON.stringify(types) === JSON.stringify(['system', 'assistant', 'result']), `types ${types}`);
  assert(text(messages[1]) === 'seen 1: hello', `assistant ${JSON.stringify(messages[1])}`);
  assert(messages[2].is_error === false && messages[2].result === 'seen 1: hello', `result ${JSON.stringify(messages[2])}`);
});

await check('multi-turn keeps the conversation', async () => {
  const sessionId = crypto.randomUUID();
  let answered = () => {};
  async function* prompts() {
    for (const p of ['first', 'second']) {
      yield { type: 'user', session_id: sessionId, message: { role: 'user', content: p }, parent_tool_use_id: null };
      await new Promise((r) => (answered = r));
    }
  }
  const q = query({ prompt: prompts(), options: options(ok, { sessionId }) });
  const results = [];
  for await (const m of q) {
    if (m.type === 'result') {
      results.push(m);
      answered();
      if (results.length === 2) break;
    }
  }
  await q.close?.();
  assert(results.length === 2, `results ${results.length}`);
  assert(results[0].result === 'seen 1: first', `first ${results[0].result}`);
  assert(results[1].result === 'seen 3: second', `second ${results[1].result}`);
  assert(results.every((r) => r.session_id === sessionId), 'session ids');
});

await check('abort ends the process cleanly', async () => {
  const controller = new AbortController();
  async function* never() {
    yield { type: 'user', session_id: 's', message: { role: 'user', content: 'one' }, parent_tool_use_id: null };
    await new Promise(() => {});
  }
  const q = query({ prompt: never(), options: options(ok, { abortController: controller }) });
  const started = Date.now();
  let error;
  try {
    for await (const m of q) {
      if (m.type === 'result') controller.abort();
    }
  } catch (e) {
    error = e;
  }
  assert(error && /abort/i.test(`${error.name} ${error.message}`), `ended with ${error}`);
  assert(Date.now() - started < 10_000, 'ended promptly');
});

await check('a failing server is an error result', async () => {
  const messages = await collect(query({ prompt: 'hello', options: options(failing) }));
  const result = messages.find((m) => m.type === 'result');
  assert(result && result.is_error === true, `result ${JSON.stringify(result)}`);
  assert(/401|key/i.test(JSON.stringify(result.error ?? result)), `error ${JSON.stringify(result)}`);
});

ok.close();
failing.close();
fs.rmSync(home, { recursive: true, force: true });
fs.rmSync(cwd, { recursive: true, force: true });
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
