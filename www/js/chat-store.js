// /chat conversations, kept in this browser's localStorage only (nothing is stored on the server
// but the usual usage rows). Images are kept as their job ids: the gateway keeps the pictures for a
// day and the page fetches them again.

const MAX_CONVERSATIONS = 100;
let KEY = null; // per account: people sharing a browser never see each other's conversations

function load() {
  if (!KEY) return { conversations: [], current: null, model: null };
  try {
    const v = JSON.parse(localStorage.getItem(KEY) || "null");
    if (v && Array.isArray(v.conversations)) return v;
  } catch {
    // a damaged entry starts afresh
  }
  return { conversations: [], current: null, model: null };
}

let state = load();

// Use the conversations of the account signed in as email (before anything else).
export function open(email) {
  KEY = "zenn-chat-v1:" + email;
  state = load();
}

function save() {
  if (!KEY) return;
  state.conversations.sort((a, b) => b.updated - a.updated);
  state.conversations.length = Math.min(state.conversations.length, MAX_CONVERSATIONS);
  for (;;) {
    try {
      localStorage.setItem(KEY, JSON.stringify(state));
      return;
    } catch {
      // over the browser's quota: the oldest conversation goes first
      if (state.conversations.length <= 1) return;
      state.conversations.pop();
    }
  }
}

export function conversations() {
  return state.conversations;
}

export function current() {
  return state.conversations.find((c) => c.id === state.current) || null;
}

export function select(id) {
  state.current = id;
  save();
}

export function create() {
  const c = { id: "c" + Date.now().toString(36) + Math.random().toString(36).slice(2, 6), title: "New chat",
    messages: [], updated: Date.now() };
  state.conversations.unshift(c);
  state.current = c.id;
  save();
  return c;
}

export function remove(id) {
  state.conversations = state.conversations.filter((c) => c.id !== id);
  if (state.current === id) state.current = state.conversations.length ? state.conversations[0].id : null;
  save();
}

// Append (or, with the same object, update) a message of conversation c and store it.
export function put(c, msg) {
  if (!c.messages.includes(msg)) c.messages.push(msg);
  if (c.title === "New chat" && msg.role === "user") c.title = msg.content.slice(0, 60) || "New chat";
  c.updated = Date.now();
  save();
}

export function lastModel() {
  return state.model;
}

export function rememberModel(id) {
  state.model = id;
  save();
}
