// One key floods, the others keep their latency. VICTIM_KEY sends VICTIM_RPS requests a second
// (the `victim` scenario); FLOOD_KEY, a key with a low `rpm`, sends FLOOD_RPS of the same
// requests a second, far over its limit (the `flood` scenario). ROUTE picks the requests:
// `embeddings` (default: single-text all-MiniLM-L6-v2 embeddings) or `chat` (16-token chat
// answers of the default chat model, where the flooding key's admitted burst queues for the
// engine's batch slots). The flood must be answered 429 with Retry-After (a few within its
// limit 200) and nothing else; the victim must get only 200s. With FLOOD_RPS=0 the run is the
// unloaded baseline that scripts/loadtest.sh --flood compares the victim's p99 against.
//   k6 run -e BASE_URL=… -e VICTIM_KEY=… -e FLOOD_KEY=… [-e ROUTE=chat -e FLOOD_RPS=200 -e VICTIM_RPS=5] k6/flood.js
import http from 'k6/http';
import { BASE_URL, CHAT_MODEL, EMBED_MODEL, TEXTS, account, pick } from './lib/nfai.js';

const FLOOD_RPS = Number(__ENV.FLOOD_RPS || 200);
const VICTIM_RPS = Number(__ENV.VICTIM_RPS || 5);
const DURATION = __ENV.DURATION || '30s';
const CHAT = (__ENV.ROUTE || 'embeddings') === 'chat';

function request(key, name) {
  const [path, body] = CHAT
    ? [
        '/v1/chat/completions',
        { model: CHAT_MODEL, messages: [{ role: 'user', content: pick(TEXTS) }], max_tokens: 16 },
      ]
    : ['/v1/embeddings', { model: EMBED_MODEL, input: pick(TEXTS) }];
  return http.post(`${BASE_URL}${path}`, JSON.stringify(body), {
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    tags: { name },
    timeout: CHAT ? '120s' : '30s',
  });
}

export function victim() {
  account(request(__ENV.VICTIM_KEY, 'victim'), [200], 'victim');
}

export function flood() {
  account(request(__ENV.FLOOD_KEY, 'flood'), [200, 429], 'flood');
}

const scenarios = {
  victim: {
    executor: 'constant-arrival-rate',
    exec: 'victim',
    rate: VICTIM_RPS,
    timeUnit: '1s',
    duration: DURATION,
    preAllocatedVUs: 4 * VICTIM_RPS,
  },
};
if (FLOOD_RPS > 0) {
  scenarios.flood = {
    executor: 'constant-arrival-rate',
    exec: 'flood',
    rate: FLOOD_RPS,
    timeUnit: '1s',
    duration: DURATION,
    preAllocatedVUs: Math.max(20, FLOOD_RPS / 5),
    maxVUs: FLOOD_RPS,
  };
}

// The victim's p99 must stay within VICTIM_P99_MAX_MS (1.5× the baseline's, set by
// scripts/loadtest.sh --flood); the baseline is held only to the client timeout.
const p99Max = Number(__ENV.VICTIM_P99_MAX_MS || 30000);

export const options = {
  scenarios,
  thresholds: {
    nfai_unexpected_status: ['rate==0'],
    checks: ['rate==1'],
    'http_req_duration{scenario:victim}': [`p(99)<${p99Max}`],
    ...(FLOOD_RPS > 0 ? { nfai_answers_429: ['count>0'] } : {}),
  },
};
