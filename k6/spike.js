// A spike to twice capacity: chat requests arrive at CAPACITY_RPS (what one node sustains,
// from docs/CAPACITY.md), then at twice that for 60 s. Beyond capacity nfai must refuse
// quickly (429 with Retry-After from a full queue, or 503) rather than time out or fail:
// any status other than 200, 429 or 503 fails the run. EXPECT_REFUSALS=1 also requires that
// some requests were refused (the queue really filled). ADMITTED_P99_MAX_MS bounds the p99 of
// the admitted (200) requests: scripts/loadtest.sh sets it to twice the p99 of UNLOADED=1, the
// same request from one client for 20 s.
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e CAPACITY_RPS=4 k6/spike.js
import { SMOKE, account, post } from './lib/nfai.js';
import { chatBody } from './chat.js';

const RATE = Number(__ENV.CAPACITY_RPS || 4);

export function spike() {
  account(post('/v1/chat/completions', chatBody(false), 'chat', '60s'), [200, 429, 503], 'spike');
}

const stages = SMOKE
  ? [
      { target: RATE, duration: '5s' },
      { target: 2 * RATE, duration: '2s' },
      { target: 2 * RATE, duration: '13s' },
    ]
  : [
      { target: RATE, duration: '20s' },
      { target: 2 * RATE, duration: '5s' },
      { target: 2 * RATE, duration: '60s' },
      { target: RATE, duration: '5s' },
      { target: RATE, duration: '20s' },
    ];

const UNLOADED = __ENV.UNLOADED === '1';
const thresholds = { nfai_unexpected_status: ['rate==0'], checks: ['rate==1'] };
if (__ENV.EXPECT_REFUSALS === '1') thresholds.nfai_answers_429 = ['count>0'];
// Held to the client timeout unless bounded (this also puts the figure in the summary).
thresholds['http_req_duration{scenario:spike,expected_response:true}'] = [
  `p(99)<${Number(__ENV.ADMITTED_P99_MAX_MS || 60000)}`,
];

const rising = {
  executor: 'ramping-arrival-rate',
  exec: 'spike',
  startRate: RATE,
  timeUnit: '1s',
  preAllocatedVUs: Math.max(20, 4 * RATE),
  maxVUs: Math.max(200, 40 * RATE),
  stages,
};
const alone = { executor: 'constant-vus', exec: 'spike', vus: 1, duration: '20s' };

export const options = {
  scenarios: { spike: UNLOADED ? alone : rising },
  thresholds,
};

export function setup() {
  post('/v1/chat/completions', chatBody(false), 'warm-up');
}

export default spike;
