// CI's smoke of every scenario in one k6 run: chat, non-generating routes, embeddings, vector
// search (SEARCH=1) and mixed CRM traffic together for 20 s, then the spike for 20 s. It
// asserts status classes and error rates only (latency on a shared CI machine is a
// measurement, not a test): each scenario's unexpected statuses are zero, every check passes,
// and the spike was refused in part (429 with Retry-After) without any other error. Run by
// scripts/loadtest.sh --smoke against an nfai with a small queue (NFAI_QUEUE_CAPACITY=16).
import { chat, chatBody, ROUTE } from './chat.js';
import { nongen } from './nongen.js';
import { embeddings } from './embeddings.js';
import { search } from './vector_search.js';
import { mixed } from './crm_mixed.js';
import { spike } from './spike.js';
import { EMBED_MODEL, EMBED_MODEL_VI, TTFT, post, reportTtft, scrapeBuckets } from './lib/nfai.js';
import { dropStore, makeStore } from './lib/store.js';

export { chat, nongen, embeddings, search, mixed, spike };

const SEARCH = __ENV.SEARCH === '1';
const RATE = Number(__ENV.CAPACITY_RPS || 12);
const together = (exec, vus) => ({ executor: 'constant-vus', exec, vus, duration: '20s' });

const scenarios = {
  chat: together('chat', 2),
  nongen: together('nongen', 4),
  embeddings: together('embeddings', 2),
  crm_mixed: together('mixed', 10),
  spike: {
    executor: 'ramping-arrival-rate',
    exec: 'spike',
    startTime: '22s',
    startRate: RATE,
    timeUnit: '1s',
    preAllocatedVUs: 4 * RATE,
    maxVUs: 20 * RATE,
    stages: [
      { target: RATE, duration: '5s' },
      { target: 2 * RATE, duration: '2s' },
      { target: 2 * RATE, duration: '13s' },
    ],
  },
};
if (SEARCH) scenarios.vector_search = together('search', 2);

const thresholds = { checks: ['rate==1'], 'nfai_answers_429{scenario:spike}': ['count>0'] };
for (const name of Object.keys(scenarios)) {
  thresholds[`nfai_unexpected_status{scenario:${name}}`] = ['rate==0'];
}

export const options = { scenarios, thresholds };

export function setup() {
  post('/v1/chat/completions', chatBody(false), 'warm-up');
  post('/v1/embeddings', { model: EMBED_MODEL, input: 'warm' }, 'warm-up');
  post('/v1/embeddings', { model: EMBED_MODEL_VI, input: 'warm' }, 'warm-up');
  return {
    before: scrapeBuckets(TTFT, { route: ROUTE }),
    store: SEARCH ? makeStore(__ENV.STORE_EMBEDDING_MODEL) : null,
  };
}

export function teardown(data) {
  reportTtft(data.before, ROUTE);
  dropStore(data.store);
}
