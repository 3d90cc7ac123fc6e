// Shared by every k6 scenario: the target, request helpers, status-class accounting and the
// time-to-first-token figures read from nfai's own histogram (k6 cannot read SSE: its
// http_req_waiting is time to first byte, not to first token).
//
// Environment: BASE_URL (default http://127.0.0.1:8080), API_KEY (sent as a bearer token when
// set), CHAT_MODEL, EMBED_MODEL, EMBED_MODEL_VI, MODE (`smoke`: status classes and error rates
// only; anything else: the seed's latency targets as thresholds too).
import http from 'k6/http';
import { check } from 'k6';
import { Counter, Gauge, Rate } from 'k6/metrics';

export const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
export const CHAT_MODEL = __ENV.CHAT_MODEL || 'smollm2-135m-instruct';
export const EMBED_MODEL = __ENV.EMBED_MODEL || 'all-minilm-l6-v2';
export const EMBED_MODEL_VI = __ENV.EMBED_MODEL_VI || 'multilingual-e5-small';
export const SMOKE = __ENV.MODE === 'smoke';

// A status outside what the scenario allows (per scenario through the `scenario` tag).
export const unexpectedStatus = new Rate('nfai_unexpected_status');
// Answers by class, so the summary shows how much was refused rather than served.
export const answers2xx = new Counter('nfai_answers_2xx');
export const answers429 = new Counter('nfai_answers_429');
export const answers503 = new Counter('nfai_answers_503');
export const answersOther = new Counter('nfai_answers_other');
// p95 time to first token over the run, from nfai's histogram (seconds).
export const ttftP95 = new Gauge('nfai_ttft_p95_seconds');
export const ttftCount = new Gauge('nfai_ttft_count');

function headers() {
  const h = { 'content-type': 'application/json' };
  if (__ENV.API_KEY) h.authorization = `Bearer ${__ENV.API_KEY}`;
  return h;
}

/** Records `res`'s status against `allowed` (an array of codes) and returns whether it was 2xx. */
export function account(res, allowed, name) {
  const s = res.status;
  if (s >= 200 && s < 300) answers2xx.add(1);
  else if (s === 429) answers429.add(1);
  else if (s === 503) answers503.add(1);
  else answersOther.add(1);
  const ok = allowed.includes(s);
  unexpectedStatus.add(!ok);
  check(res, { [`${name}: status ${allowed.join('/')}`]: () => ok });
  if (s === 429 || s === 503) {
    check(res, { [`${name}: ${s} carries Retry-After`]: (r) => !!r.headers['Retry-After'] });
  }
  return s >= 200 && s < 300;
}

export function get(path, name) {
  return http.get(`${BASE_URL}${path}`, { headers: headers(), tags: { name } });
}

export function post(path, body, name, timeout) {
  return http.post(`${BASE_URL}${path}`, JSON.stringify(body), {
    headers: headers(),
    tags: { name },
    timeout: timeout || '120s',
  });
}

// CRM-like texts, English and Vietnamese.
export const TEXTS = [
  'Customer asks when order #4521 will be delivered.',
  'Invoice 1234 was paid ten days late; send a polite reminder about the new terms.',
  'Lead from the trade fair wants a demo of the reporting module next week.',
  'Đơn hàng số 4521 sẽ được giao vào thứ Sáu.',
  'Khách hàng phàn nàn về hóa đơn bị tính phí hai lần trong tháng này.',
  'Please summarise the last three support tickets of ACME Corp.',
  'Khi nào nhân viên kinh doanh sẽ gọi lại cho tôi?',
  'The contract renewal is due on 30 June; prepare a discount proposal.',
];

export function pick(list) {
  return list[Math.floor(Math.random() * list.length)];
}

/** Cumulative bucket counts of histogram `name` from /metrics, summed over the series whose
 * labels match every `want` pair: { le -> count }. */
export function scrapeBuckets(name, want) {
  const res = http.get(`${BASE_URL}/metrics`, { headers: headers(), tags: { name: 'metrics' } });
  const out = {};
  if (res.status !== 200) return out;
  const prefix = `${name}_bucket{`;
  for (const line of res.body.split('\n')) {
    if (!line.startsWith(prefix)) continue;
    const close = line.lastIndexOf('}');
    const labels = {};
    for (const m of line.slice(prefix.length, close).matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      labels[m[1]] = m[2];
    }
    if (!Object.keys(want).every((k) => labels[k] === want[k])) continue;
    const le = labels.le === '+Inf' ? Infinity : parseFloat(labels.le);
    out[le] = (out[le] || 0) + parseFloat(line.slice(close + 1).trim());
  }
  return out;
}

/** Prometheus' histogram_quantile over the difference of two scrapes: [quantile, count]. */
export function quantileBetween(before, after, q) {
  const bounds = Object.keys(after).map(Number).sort((a, b) => a - b);
  const cum = bounds.map((b) => (after[b] || 0) - (before[b] || 0));
  const total = cum.length ? cum[cum.length - 1] : 0;
  if (total <= 0) return [NaN, 0];
  const rank = q * total;
  let prevBound = 0;
  let prevCount = 0;
  for (let i = 0; i < bounds.length; i++) {
    if (cum[i] >= rank) {
      if (bounds[i] === Infinity) return [prevBound, total];
      const inBucket = cum[i] - prevCount;
      const frac = inBucket > 0 ? (rank - prevCount) / inBucket : 0;
      return [prevBound + (bounds[i] - prevBound) * frac, total];
    }
    prevBound = bounds[i];
    prevCount = cum[i];
  }
  return [prevBound, total];
}

export const TTFT = 'nfai_time_to_first_token_seconds';

/** Emits the p95 time to first token of `route` between `before` and now. */
export function reportTtft(before, route) {
  const [p95, n] = quantileBetween(before, scrapeBuckets(TTFT, { route }), 0.95);
  ttftCount.add(n);
  if (n > 0) ttftP95.add(p95);
  console.log(`nfai ${route}: p95 time to first token ${(p95 * 1000).toFixed(1)} ms over ${n} requests`);
}
