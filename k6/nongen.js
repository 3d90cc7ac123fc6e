// Non-generating routes: listings, health and readiness. Target: p95 under 200 ms.
//   k6 run -e BASE_URL=http://127.0.0.1:8080 [-e VUS=50 -e DURATION=60s] k6/nongen.js
import { CHAT_MODEL, SMOKE, account, get, pick } from './lib/nfai.js';

const ROUTES = [
  ['/v1/models', 'models'],
  [`/v1/models/${CHAT_MODEL}`, 'model'],
  ['/health', 'health'],
  ['/ready', 'ready'],
  ['/api/tags', 'ollama-tags'],
  ['/api/version', 'ollama-version'],
];

/** One request; `allowed`: the statuses that count as expected. */
export function nongenOnce(allowed) {
  const [path, name] = pick(ROUTES);
  account(get(path, name), allowed, name);
}

export function nongen() {
  nongenOnce([200]);
}

export const options = {
  scenarios: {
    nongen: {
      executor: 'constant-vus',
      exec: 'nongen',
      vus: Number(__ENV.VUS || (SMOKE ? 4 : 50)),
      duration: __ENV.DURATION || (SMOKE ? '20s' : '60s'),
    },
  },
  thresholds: SMOKE
    ? { nfai_unexpected_status: ['rate==0'], checks: ['rate==1'] }
    : { nfai_unexpected_status: ['rate<0.01'], 'http_req_duration{scenario:nongen}': ['p(95)<200'] },
};

export default nongen;
