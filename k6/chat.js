// Warm chat: streamed chat completions on a loaded model. Target (the seed's): p95 time to first
// token under 500 ms, read from nfai's histogram before and after the run.
//   k6 run -e BASE_URL=http://127.0.0.1:8080 [-e VUS=8 -e DURATION=60s] k6/chat.js
import { check, sleep } from 'k6';
import { CHAT_MODEL, SMOKE, TEXTS, TTFT, account, pick, post, reportTtft, scrapeBuckets } from './lib/nfai.js';

export const ROUTE = '/v1/chat/completions';

export function chatBody(stream) {
  return {
    model: CHAT_MODEL,
    stream,
    max_tokens: 16,
    temperature: 0.2,
    messages: [
      { role: 'system', content: 'You are a CRM assistant. Answer in one sentence.' },
      { role: 'user', content: pick(TEXTS) },
    ],
  };
}

export function chat() {
  const res = post(ROUTE, { ...chatBody(true), stream_options: { include_usage: true } }, 'chat');
  if (account(res, [200], 'chat')) {
    check(res, { 'chat: the stream ends with [DONE]': (r) => r.body.includes('data: [DONE]') });
  } else if (res.status === 429) {
    // As the SDKs do: wait as long as Retry-After asks before the next request.
    sleep(Number(res.headers['Retry-After']) || 1);
  }
}

export const options = {
  scenarios: {
    chat: {
      executor: 'constant-vus',
      exec: 'chat',
      vus: Number(__ENV.VUS || (SMOKE ? 2 : 8)),
      duration: __ENV.DURATION || (SMOKE ? '20s' : '60s'),
    },
  },
  thresholds: SMOKE
    ? { nfai_unexpected_status: ['rate==0'], checks: ['rate==1'] }
    : {
        nfai_unexpected_status: ['rate<0.01'],
        nfai_ttft_p95_seconds: ['value<0.5'],
      },
};

// The model is warm before the clock starts: one request loads it if needed.
export function setup() {
  post(ROUTE, chatBody(false), 'warm-up');
  return { before: scrapeBuckets(TTFT, { route: ROUTE }) };
}

export function teardown(data) {
  reportTtft(data.before, ROUTE);
}

export default chat;
