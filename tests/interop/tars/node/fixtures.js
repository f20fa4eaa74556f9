'use strict';
// Prints Tars byte fixtures for worker/src/codec/fixtures.rs encoded by
// TarsNode: @tars/rpc 2.0.15's own request composer
// (core/rpc-tars/tars-client.js, on @tars/stream 2.0.3), an encoder
// independent of TarsGo's.
//
//   cd tests/interop/tars/node && node fixtures.js

const TarsStream = require('@tars/stream');
const Composer = require('@tars/rpc/core/rpc-tars/tars-client.js');
const ServerComposer = require('@tars/rpc/core/rpc-tars/tars-server.js');
const RequestF = require('@tars/rpc/core/rpc-tars/RequestF.js').tars;

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

// A TUP response as TarsNode's server writes one (tars-server.js
// composeTUP): a RequestPacket with the request's servant and function and
// the result code in status.
function tupRequest(id) {
  const origin = new RequestF.RequestPacket();
  origin.iVersion = 3;
  origin.iRequestId = id;
  origin.sServantName = 'Baton.EchoServer.EchoObj';
  origin.sFuncName = 'echo';
  return origin;
}
const result = new TarsStream.UniAttribute();
result.writeString('', 'a|hi');
result.writeString('tars_ret', 'a|hi');
show('TARS_NODE_TUP_RESPONSE', new ServerComposer().compose({
  origin: tupRequest(7), appBuffer: result.encode(), iResultCode: 0, sResultDesc: '',
}));
// What baton's hijack must write for a TUP call with id 8 that timed out.
show('TARS_NODE_TUP_RESPONSE_INVOKE_TIMEOUT', new ServerComposer().compose({
  origin: tupRequest(8), appBuffer: undefined, iResultCode: -7, sResultDesc: 'baton: upstream timeout',
}));
