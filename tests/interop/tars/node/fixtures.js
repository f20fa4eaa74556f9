'use strict';
// Prints Tars byte fixtures for worker/src/codec/fixtures.rs encoded by
// TarsNode: @tars/rpc 2.0.15's own request composer
// (core/rpc-tars/tars-client.js, on @tars/stream 2.0.3), an encoder
// independent of TarsGo's.
//
//   cd tests/interop/tars/node && node fixtures.js

const TarsStream = require('@tars/stream');
const Composer = require('@tars/rpc/core/rpc-tars/tars-client.js');

function show(name, buf) {
  console.log(`${name} (${buf.length} bytes)`);
  const hex = [...buf].map(b => b.toString(16).padStart(2, '0'));
  for (let i = 0; i < hex.length; i += 32) {
    console.log(`    "${hex.slice(i, i + 32).join(' ')}"`);
  }
}

function args(...values) {
  const os = new TarsStream.TarsOutputStream();
  values.forEach((v, i) => os.writeString(i + 1, v));
  return os.getBinBuffer();
}

show('TARS_NODE_REQUEST_CONTEXT', new Composer().compose({
  iRequestId: 40000,
  sServantName: 'Baton.EchoServer.EchoObj',
  sFuncName: 'echo',
  appBuffer: args('hello'),
  iTimeout: 15000,
  property: { context: { zone: 'b' } },
}));
show('TARS_NODE_REQUEST_ONEWAY', new Composer().compose({
  iRequestId: 2,
  sServantName: 'Baton.EchoServer.EchoObj',
  sFuncName: 'note',
  appBuffer: args('n'),
  iTimeout: 15000,
  property: { packetType: 1 },
}));
