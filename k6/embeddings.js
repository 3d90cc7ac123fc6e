// Embeddings: one text or a batch of eight, English (all-MiniLM-L6-v2) and Vietnamese
// (multilingual-e5-small). Target: p95 under 500 ms (an embedding is a request's first and
// only token).
//   k6 run -e BASE_URL=http://127.0.0.1:8080 [-e VUS=16 -e DURATION=60s] k6/embeddings.js
import { check } from 'k6';
import { EMBED_MODEL, EMBED_MODEL_VI, SMOKE, TEXTS, account, pick, post } from './lib/nfai.js';

/** One request; `allowed`: the statuses that count as expected (mixed traffic allows 429). */
export function embedOnce(allowed) {
  const batch = Math.random() < 0.25;
  const model = Math.random() < 0.5 ? EMBED_MODEL : EMBED_MODEL_VI;
  const input = batch ? TEXTS : pick(TEXTS);
  const res = post('/v1/embeddings', { model, input }, 'embeddings');
  if (account(res, allowed, 'embeddings') && res.status === 200) {
    check(res, {
      'embeddings: one vector per input': (r) => r.json('data').length === (batch ? TEXTS.length : 1),
    });
  }
}

// The scenario (k6 passes setup's data as the first argument, so it takes none of its own).
export function embeddings() {
  embedOnce([200]);
}

export const options = {
  scenarios: {
    embeddings: {
      executor: 'constant-vus',
      exec: 'embeddings',
      vus: Number(__ENV.VUS || (SMOKE ? 2 : 16)),
      duration: __ENV.DURATION || (SMOKE ? '20s' : '60s'),
    },
  },
  thresholds: SMOKE
    ? { nfai_unexpected_status: ['rate==0'], checks: ['rate==1'] }
    : {
        nfai_unexpected_status: ['rate<0.01'],
        'http_req_duration{scenario:embeddings}': ['p(95)<500'],
      },
};

// Both models loaded before the clock starts.
export function setup() {
  post('/v1/embeddings', { model: EMBED_MODEL, input: 'warm' }, 'warm-up');
  post('/v1/embeddings', { model: EMBED_MODEL_VI, input: 'warm' }, 'warm-up');
}

export default embeddings;
