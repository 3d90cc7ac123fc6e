// A vector store of CRM notes for the search scenarios, made through nfai's OpenAI-compatible
// Files and Vector Stores API, and removed afterwards.
import http from 'k6/http';
import { sleep } from 'k6';
import { BASE_URL } from './nfai.js';

const NOTES = [
  'Order #4521 ships from the Hanoi warehouse on Thursday and is delivered on Friday.',
  'Invoice 1234 was paid ten days late; late fees are waived once per customer per year.',
  'ACME Corp renews its contract on 30 June; the account manager proposes a 5% discount.',
  'Đơn hàng số 4521 được giao từ kho Hà Nội vào thứ Sáu.',
  'Khách hàng có thể đổi trả sản phẩm trong vòng 30 ngày kể từ ngày nhận hàng.',
  'Support hours are 8:00 to 18:00, Monday to Saturday, Vietnam time.',
  'Hóa đơn bị tính phí hai lần sẽ được hoàn tiền trong 5 ngày làm việc.',
  'The reporting module exports sales by region, product and salesperson to Excel.',
];

export const QUERIES = [
  'When is order 4521 delivered?',
  'Khi nào đơn hàng 4521 được giao?',
  'late invoice fees',
  'hoàn tiền hóa đơn tính phí hai lần',
  'contract renewal discount',
  'support opening hours',
];

function auth() {
  return __ENV.API_KEY ? { authorization: `Bearer ${__ENV.API_KEY}` } : {};
}

function json(method, path, body) {
  const res = http.request(method, `${BASE_URL}${path}`, body ? JSON.stringify(body) : null, {
    headers: { ...auth(), 'content-type': 'application/json' },
    tags: { name: 'store-setup' },
  });
  if (res.status !== 200) throw new Error(`${method} ${path}: ${res.status} ${res.body}`);
  return res.json();
}

/** Uploads the notes, makes a store of them, waits until they are indexed: the store's id. */
export function makeStore(model) {
  const up = http.post(
    `${BASE_URL}/v1/files`,
    { purpose: 'assistants', file: http.file(NOTES.join('\n\n'), 'crm-notes.txt', 'text/plain') },
    { headers: auth(), tags: { name: 'store-setup' } },
  );
  if (up.status !== 200) throw new Error(`POST /v1/files: ${up.status} ${up.body}`);
  const fileId = up.json('id');
  const body = { name: 'k6-crm-notes', file_ids: [fileId] };
  if (model) body.embedding_model = model;
  const store = json('POST', '/v1/vector_stores', body);
  for (let i = 0; i < 600; i++) {
    const s = json('GET', `/v1/vector_stores/${store.id}`);
    if (s.file_counts.in_progress === 0) {
      if (s.file_counts.completed !== 1) throw new Error(`indexing failed: ${JSON.stringify(s.file_counts)}`);
      return { storeId: store.id, fileId };
    }
    sleep(0.1);
  }
  throw new Error('the store was not indexed within 60 s');
}

export function dropStore(ids) {
  if (!ids) return;
  http.del(`${BASE_URL}/v1/vector_stores/${ids.storeId}`, null, { headers: auth(), tags: { name: 'store-setup' } });
  http.del(`${BASE_URL}/v1/files/${ids.fileId}`, null, { headers: auth(), tags: { name: 'store-setup' } });
}
