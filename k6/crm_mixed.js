// Mixed CRM traffic at 100 virtual users, each a CRM user with a second of think time between
// requests: 15% chat replies (non-streamed, 16 tokens), 35% embeddings, 30% listings and
// health, 20% vector search (SEARCH=1; with SEARCH=0 its share goes to embeddings).
// A full queue's 429 is an allowed answer here (backpressure under load, on any model); anything
// else not 2xx is an error. Targets: non-generating p95 under 200 ms, embeddings and search as their own
// scenarios, errors under 1%.
//   k6 run -e BASE_URL=http://127.0.0.1:8080 [-e VUS=100 -e DURATION=60s -e SEARCH=1] k6/crm_mixed.js
import { sleep } from 'k6';
import { SMOKE, account, get, pick, post } from './lib/nfai.js';
import { chatBody } from './chat.js';
import { embedOnce } from './embeddings.js';
import { nongenOnce } from './nongen.js';
import { QUERIES, dropStore, makeStore } from './lib/store.js';

const SEARCH = __ENV.SEARCH === '1';

export function mixed(data) {
  const r = Math.random();
  if (r < 0.15) {
    account(post('/v1/chat/completions', chatBody(false), 'chat'), [200, 429], 'mixed-chat');
  } else if (r < 0.5 || (!SEARCH && r >= 0.8)) {
    embedOnce([200, 429]);
  } else if (r < 0.8) {
    nongenOnce([200, 429]);
  } else {
    const res = post(
      `/v1/vector_stores/${data.store.storeId}/search`,
      { query: pick(QUERIES), max_num_results: 3 },
      'vector-search',
    );
    account(res, [200, 429], 'mixed-search');
  }
  sleep(0.5 + Math.random());
}

export const options = {
  scenarios: {
    crm_mixed: {
      executor: 'constant-vus',
      exec: 'mixed',
      vus: Number(__ENV.VUS || (SMOKE ? 10 : 100)),
      duration: __ENV.DURATION || (SMOKE ? '20s' : '60s'),
    },
  },
  thresholds: SMOKE
    ? { nfai_unexpected_status: ['rate==0'], checks: ['rate==1'] }
    : {
        nfai_unexpected_status: ['rate<0.01'],
        'http_req_duration{scenario:crm_mixed,name:models}': ['p(95)<200'],
        'http_req_duration{scenario:crm_mixed,name:health}': ['p(95)<200'],
      },
};

export function setup() {
  post('/v1/chat/completions', chatBody(false), 'warm-up');
  return SEARCH ? { store: makeStore(__ENV.STORE_EMBEDDING_MODEL) } : {};
}

export function teardown(data) {
  dropStore(data.store);
}

export default mixed;
