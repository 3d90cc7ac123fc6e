// Vector search: queries (English and Vietnamese) against a store of CRM notes, through
// POST /v1/vector_stores/{id}/search. Each search embeds its query, so the target is that of a
// non-generating route with one embedding: p95 under 200 ms.
//   k6 run -e BASE_URL=http://127.0.0.1:8080 [-e VUS=16 -e DURATION=60s] k6/vector_search.js
import { check } from 'k6';
import { SMOKE, account, pick, post } from './lib/nfai.js';
import { QUERIES, dropStore, makeStore } from './lib/store.js';

export function search(data) {
  const res = post(
    `/v1/vector_stores/${data.store.storeId}/search`,
    { query: pick(QUERIES), max_num_results: 3 },
    'vector-search',
  );
  if (account(res, [200], 'vector-search')) {
    check(res, { 'vector-search: results': (r) => r.json('data').length > 0 });
  }
}

export const options = {
  scenarios: {
    vector_search: {
      executor: 'constant-vus',
      exec: 'search',
      vus: Number(__ENV.VUS || (SMOKE ? 2 : 16)),
      duration: __ENV.DURATION || (SMOKE ? '20s' : '60s'),
    },
  },
  thresholds: SMOKE
    ? { nfai_unexpected_status: ['rate==0'], checks: ['rate==1'] }
    : {
        nfai_unexpected_status: ['rate<0.01'],
        'http_req_duration{scenario:vector_search}': ['p(95)<200'],
      },
};

export function setup() {
  return { store: makeStore(__ENV.STORE_EMBEDDING_MODEL) };
}

export function teardown(data) {
  dropStore(data.store);
}

export default search;
