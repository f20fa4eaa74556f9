'use strict';
// npm `ali-ons` (Alibaba's Node.js RocketMQ client, remoting protocol) as
// a second, independent RocketMQ application for baton's interop tests
// (tests/tests/interop_rocketmq_node.rs): a producer and a push-consumer
// group against an Apache name server — open-source mode, the `nameSrv`
// option, no Aliyun access keys, so no request is signed.
//
//   node rocketmq_node_client.js --namesrv HOST:PORT --topic T --group G
//        --run-id ID [--count N] [--consumers C] [--size BYTES]
//        [--send-interval-ms MS] [--timeout-ms MS]
//
// The consumers start first (instances `c0`, `c1`, ...: one client id,
// and so one set of connections, each) and consume from the queues'
// first offsets; once every consumer holds queues, the producer (instance
// `p`) sends N messages, one at a time, each keyed `ID-node-I` (the key
// also in the body), pausing `--send-interval-ms` between sends. The run
// ends when every acknowledged key was consumed, or at `--timeout-ms`.
//
// One JSON object per line on stdout:
//   {"event":"connect","remote":A,"local":P}     a TCP connection opened
//   {"event":"close","remote":A,"local":P}       ... and closed
//   {"event":"rebalance","consumer":C,"topic":T,"queues":[...]}
//   {"event":"ready","consumers":C}              every consumer holds queues
//   {"event":"sent","key":K,"msg_id":M,"queue":Q,"latency_us":U}
//   {"event":"send_failed","key":K,"error":E}
//   {"event":"consumed","key":K,"consumer":C,"msg_id":M,"queue":Q}
//   {"event":"broker_request","client":C,"code":N,"remote":A}
//       a request the broker sent (ali-ons answers none)
//   {"event":"summary", ...}                     counts, before shutdown
// Every TCP connection the library opens goes through `net.connect`:
// wrapping it sees them all, so a test can tell whether ali-ons ever
// reconnected.

const net = require('net');

const emit = obj => process.stdout.write(JSON.stringify(obj) + '\n');

const sockets = [];
const connect = net.connect;
net.connect = function(...args) {
  const socket = connect.apply(this, args);
  const opts = typeof args[0] === 'object' ? args[0] : { port: args[0], host: args[1] };
  const entry = { remote: `${opts.host}:${opts.port}`, local: null, closed: false };
  sockets.push(entry);
  socket.once('connect', () => {
    entry.local = socket.localPort;
    emit({ event: 'connect', remote: entry.remote, local: entry.local });
  });
  socket.once('close', () => {
    entry.closed = true;
    emit({ event: 'close', remote: entry.remote, local: entry.local });
  });
  return socket;
};

const { Producer, Consumer, Message } = require('ali-ons');

function parseArgs(argv) {
  const o = {
    count: 1000, consumers: 2, size: 1024, sendIntervalMs: 0, timeoutMs: 60000,
  };
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [ argv[i], argv[i + 1] ];
    switch (k) {
      case '--namesrv': o.namesrv = v; break;
      case '--topic': o.topic = v; break;
      case '--group': o.group = v; break;
      case '--run-id': o.runId = v; break;
      case '--count': o.count = Number(v); break;
      case '--consumers': o.consumers = Number(v); break;
      case '--size': o.size = Number(v); break;
      case '--send-interval-ms': o.sendIntervalMs = Number(v); break;
      case '--timeout-ms': o.timeoutMs = Number(v); break;
      default: throw new Error(`unknown argument ${k}`);
    }
  }
  for (const k of [ 'namesrv', 'topic', 'group', 'runId' ]) {
    if (!o[k]) throw new Error(`--${k} is required`);
  }
  return o;
}

const logger = {
  debug() {},
  info() {},
  warn(...args) { console.error('[ali-ons warn]', ...args); },
  error(...args) { console.error('[ali-ons error]', ...args); },
};

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const started = Date.now();
  // `httpclient` is only used to look the name servers up at Aliyun's
  // address service (`onsAddr`); with `nameSrv` it is never called.
  const common = { httpclient: {}, nameSrv: o.namesrv, logger };

  const sent = new Set();
  const consumed = new Map();
  let sendFailures = 0;
  let lastConsumed = Date.now();

  const consumers = [];
  for (let i = 0; i < o.consumers; i++) {
    const name = `c${i}`;
    const consumer = new Consumer(Object.assign({}, common, {
      consumerGroup: o.group,
      instanceName: name,
      consumeFromWhere: 'CONSUME_FROM_FIRST_OFFSET',
      // Find the group's other members sooner than every 10 s.
      rebalanceInterval: 2000,
    }));
    consumer.on('error', err => console.error(`[${name}]`, err.message));
    consumer.subscribe(o.topic, '*', async msg => {
      const key = msg.keys || msg.body.toString().split(' ')[0];
      consumed.set(key, (consumed.get(key) || 0) + 1);
      lastConsumed = Date.now();
      emit({ event: 'consumed', key, consumer: name, msg_id: msg.msgId, queue: msg.queueId });
    });
    consumer.on(`topic_${o.topic}_queue_changed`, () => {
      const queues = Array.from(consumer._processQueueTable.keys())
        .filter(k => k.includes(`topic="${o.topic}"`));
      emit({ event: 'rebalance', consumer: name, topic: o.topic, queues });
    });
    consumer._mqClient.on('request', (request, remote) => {
      emit({ event: 'broker_request', client: name, code: request.data && request.data.code, remote });
    });
    consumers.push({ name, consumer });
  }
  await Promise.all(consumers.map(c => c.consumer.ready()));
  const producer = new Producer(Object.assign({}, common, {
    producerGroup: `${o.group}-producer`,
    instanceName: 'p',
  }));
  producer.on('error', err => console.error('[p]', err.message));
  producer._mqClient.on('request', (request, remote) => {
    emit({ event: 'broker_request', client: 'p', code: request.data && request.data.code, remote });
  });
  await producer.ready();

  // Every consumer holds queues of the topic: the group has formed.
  const holds = c => Array.from(c._processQueueTable.keys())
    .some(k => k.includes(`topic="${o.topic}"`));
  const formDeadline = Date.now() + o.timeoutMs;
  while (!consumers.every(c => holds(c.consumer)) && Date.now() < formDeadline) {
    await sleep(100);
  }
  emit({ event: 'ready', consumers: consumers.filter(c => holds(c.consumer)).length });

  const pad = 'x'.repeat(Math.max(0, o.size - 40));
  const latencies = [];
  const sendStarted = Date.now();
  for (let i = 0; i < o.count; i++) {
    const key = `${o.runId}-node-${i}`;
    const msg = new Message(o.topic, 'node', Buffer.from(`${key} ${pad}`));
    msg.keys = [ key ];
    const t0 = process.hrtime.bigint();
    try {
      const result = await producer.send(msg);
      if (result.sendStatus !== 'SEND_OK') throw new Error(`status ${result.sendStatus}`);
      const us = Number((process.hrtime.bigint() - t0) / 1000n);
      latencies.push(us);
      sent.add(key);
      emit({
        event: 'sent', key, msg_id: result.msgId,
        queue: result.messageQueue && result.messageQueue.queueId, latency_us: us,
      });
    } catch (err) {
      sendFailures++;
      emit({ event: 'send_failed', key, error: String(err && err.message || err) });
    }
    if (o.sendIntervalMs > 0) await sleep(o.sendIntervalMs);
  }
  const sendSecs = (Date.now() - sendStarted) / 1000;

  const deadline = started + o.timeoutMs;
  const allConsumed = () => Array.from(sent).every(k => consumed.has(k));
  while (!allConsumed() && Date.now() < deadline) {
    await sleep(100);
  }
  latencies.sort((a, b) => a - b);
  const pct = p => latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] : 0;
  const missing = Array.from(sent).filter(k => !consumed.has(k));
  let duplicates = 0;
  for (const n of consumed.values()) duplicates += n - 1;
  emit({
    event: 'summary',
    sent: sent.size,
    send_failures: sendFailures,
    consumed: consumed.size,
    duplicates,
    missing: missing.length,
    missing_sample: missing.slice(0, 5),
    connections: sockets.length,
    closed: sockets.filter(s => s.closed).length,
    send_msgs_per_s: Math.round(sent.size / Math.max(sendSecs, 0.001)),
    send_p50_us: pct(0.5),
    send_p99_us: pct(0.99),
    last_consumed_ms_ago: Date.now() - lastConsumed,
    elapsed_ms: Date.now() - started,
  });

  await producer.close();
  for (const { consumer } of consumers) await consumer.close();
}

main().then(
  () => process.exit(0),
  err => {
    console.error(err && err.stack || err);
    process.exit(1);
  });
