'use strict';
// A sofa-rpc-node RpcServer for baton's interop tests, speaking Bolt
// (sofa-bolt-node, the default) or Dubbo (dubbo-remoting).
//
//   node rpc_server.js '{"protocol":"bolt","name":"a","services":["com.example.Echo"]}'
//
// Every service has the same methods; each answer names the server and the
// service that produced it, so a test can tell where a call went:
//
//   echo(value)            -> "<name>|<service>|<value>"
//   slowEcho(value, ms)    -> the same, after `ms` milliseconds
//
// With "holdSlow": true, slowEcho first waits for a line {"op":"release"}
// on stdin, then `ms`: a test can make sure its calls are still unanswered
// when something happens (an upgrade has moved the client's connection)
// without betting on a sleep being long enough.
//
// Events go to stdout, one JSON object per line:
//
//   {"event":"listening","port":N}
//   {"event":"connection","remote":"127.0.0.1:P"}   a TCP connection accepted
//   {"event":"close","remote":"127.0.0.1:P"}
//   {"event":"request","service":S,"method":M,"value":V}
//   {"event":"released"}
//   {"event":"props","service":S,"method":M,"value":V,"props":{...}}
//       what the request carried besides its arguments, as the library
//       decoded it: a Dubbo request's attachments, a Bolt request's
//       `requestProps`
//
// The process lives until its stdin closes (the test's handle dropped).

const { RpcServer } = require('sofa-rpc-node').server;

const opts = JSON.parse(process.argv[2]);
const emit = obj => process.stdout.write(JSON.stringify(obj) + '\n');
// The library logs through this; keep stdout for events.
const logger = {
  debug() {},
  info() {},
  warn(...args) { console.error('[server warn]', ...args); },
  error(...args) { console.error('[server error]', ...args); },
};

const protocol = opts.protocol === 'dubbo' ? require('dubbo-remoting') : require('sofa-bolt-node');
const server = new RpcServer({ logger, port: opts.port || 0, protocol });

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));
let release;
const released = opts.holdSlow ? new Promise(resolve => { release = resolve; }) : Promise.resolve();

for (const service of opts.services) {
  const answer = value => `${opts.name}|${service}|${value}`;
  server.addService({ interfaceName: service }, {
    async echo(value) {
      emit({ event: 'request', service, method: 'echo', value });
      return answer(value);
    },
    async slowEcho(value, ms) {
      emit({ event: 'request', service, method: 'slowEcho', value });
      await released;
      await sleep(Number(ms));
      return answer(value);
    },
  });
}

server.on('connection', conn => {
  const remote = conn.remoteAddress;
  emit({ event: 'connection', remote });
  conn.once('close', () => emit({ event: 'close', remote }));
});
server.on('request', ({ req }) => {
  const data = req.data || {};
  const args = data.args || [];
  emit({
    event: 'props',
    service: data.interfaceName,
    method: data.methodName,
    value: args.length ? args[0] : null,
    props: data.requestProps || null,
  });
});
server.on('error', err => console.error('[server error event]', err && err.stack));

server.start().then(() => {
  emit({ event: 'listening', port: server.publishPort });
}, err => {
  console.error('start failed:', err && err.stack);
  process.exit(1);
});

// The test holds our stdin; when it goes away (test over, or test process
// killed), so do we.
let pending = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', chunk => {
  pending += chunk;
  let nl;
  while ((nl = pending.indexOf('\n')) >= 0) {
    const line = pending.slice(0, nl);
    pending = pending.slice(nl + 1);
    if (line.trim() && JSON.parse(line).op === 'release' && release) {
      release();
      emit({ event: 'released' });
    }
  }
});
process.stdin.on('end', () => process.exit(0));
