// The Node `ws` peer of confab-bench: the broadcast loop of the `ws` README, grown just
// enough of Confab's wire protocol (docs/PROTOCOL.md, version 6) for the bench's idle and
// fan-out scenarios: hello → welcome, create_room → rooms_changed, join → joined, send → ack + message to
// every member of the room (the sender included). No storage, no validation beyond what
// keeps it running, no presence, history or limits: it is the yardstick, not a product.
//
// Usage: node server.js [--listen 127.0.0.1:0]
// Prints "node-ws peer listening on http://ADDR/" once it accepts connections.
'use strict';

const { WebSocketServer } = require('ws');

const PROTOCOL = 7;
// The store's identity in `welcome`: this peer keeps nothing, so every start is a new one.
const EPOCH = require('crypto').randomBytes(16).toString('hex');

function listenAddress(argv) {
  const i = argv.indexOf('--listen');
  const value = i >= 0 ? argv[i + 1] : '127.0.0.1:0';
  const colon = value.lastIndexOf(':');
  return { host: value.slice(0, colon), port: Number(value.slice(colon + 1)) };
}

const { host, port } = listenAddress(process.argv);
// Same frame limit as Confab; no per-message deflate (Confab negotiates none either).
const wss = new WebSocketServer({ host, port, path: '/ws', maxPayload: 64 * 1024, perMessageDeflate: false });

/** room name → { members: Set<WebSocket>, seq: number } */
const rooms = new Map();
let nextId = 1;

function room(name) {
  let r = rooms.get(name);
  if (!r) {
    r = { members: new Set(), seq: 0 };
    rooms.set(name, r);
  }
  return r;
}

function send(ws, msg) {
  ws.send(JSON.stringify(msg));
}

wss.on('connection', (ws) => {
  ws.name = null;
  ws.rooms = new Set();
  ws.on('error', () => {});
  ws.on('message', (data, isBinary) => {
    if (isBinary) return ws.close(1003, 'text frames only');
    let msg;
    try {
      msg = JSON.parse(data.toString());
    } catch (e) {
      return send(ws, { type: 'error', code: 'bad_json', message: String(e.message) });
    }
    switch (msg.type) {
      case 'hello':
        ws.name = String(msg.name);
        ws.handle = `~${ws.name.toLowerCase()}`;
        return send(ws, { type: 'welcome', protocol: PROTOCOL, epoch: EPOCH, you: { user: ws.handle, name: ws.name, guest: true }, rooms: [] });
      case 'create_room': {
        const name = String(msg.room);
        const r = room(name);
        // As Confab answers its creator: the new room's entry, naming it in `created`.
        const entry = { name, title: name, kind: 'public', online: r.members.size };
        return send(ws, { type: 'rooms_changed', rooms: [entry], created: name });
      }
      case 'join': {
        const r = room(String(msg.room));
        r.members.add(ws);
        ws.rooms.add(msg.room);
        return send(ws, { type: 'joined', room: msg.room, members: [], member_count: r.members.size, online: [], through: r.seq, history: [] });
      }
      case 'send': {
        const r = rooms.get(msg.room);
        if (!r || !r.members.has(ws)) {
          return send(ws, { type: 'error', code: 'not_in_room', message: 'join first', room: msg.room, client_id: msg.client_id });
        }
        const id = nextId++;
        const seq = ++r.seq;
        const ts = Date.now();
        send(ws, { type: 'ack', room: msg.room, client_id: msg.client_id, id, seq, ts });
        // Encode once, send the same string to every member: the README's broadcast loop.
        const frame = JSON.stringify({ type: 'message', id, room: msg.room, seq, from: ws.handle, name: ws.name, body: msg.body, ts });
        for (const member of r.members) {
          if (member.readyState === 1) member.send(frame);
        }
        return;
      }
      default:
        return send(ws, { type: 'error', code: 'unknown_type', message: 'not supported by the node-ws peer' });
    }
  });
  ws.on('close', () => {
    for (const name of ws.rooms) rooms.get(name)?.members.delete(ws);
  });
});

wss.on('listening', () => {
  const a = wss.address();
  console.log(`node-ws peer listening on http://${a.address}:${a.port}/`);
});

function stop() {
  for (const ws of wss.clients) ws.close(1001, 'server shutting down');
  wss.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
