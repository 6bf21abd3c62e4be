// The header every page shares: marks the current page, shows who is signed in, signs out.
import { api } from "./api.js";

// The signed-in account, or null (the session call answers 200 either way).
export async function session() {
  const s = await api("GET", "/api/v1/account/session");
  return s.signed_in ? s.account : null;
}

// The header's markup: one place for every page.
const LINKS = `
  <a class="brand" href="/">zenn-gateway</a>
  <a href="/pricing">Pricing</a>
  <a href="/docs">Docs</a>
  <a href="/chat" data-when="in" hidden>Chat</a>
  <a href="/manage-api-keys" data-when="in" hidden>API keys</a>
  <a href="/usage" data-when="in" hidden>Usage</a>
  <a href="/checkout" data-when="in" hidden>Top up</a>
  <a href="/account" data-when="in" hidden>Account</a>
  <span class="who" id="nav-who" data-when="in" hidden></span>
  <button type="button" class="link" id="nav-signout" data-when="in" hidden>Sign out</button>
  <a href="/login" data-when="out">Sign in</a>
  <a href="/signup" data-when="out" class="button">Sign up</a>`;

export async function initNav() {
  const header = document.querySelector("header.site");
  if (header && !header.querySelector("nav")) {
    const nav = document.createElement("nav");
    nav.setAttribute("aria-label", "Main");
    nav.innerHTML = LINKS;
    header.append(nav);
  }
  const here = location.pathname.replace(/\.html$/, "") || "/";
  for (const a of document.querySelectorAll("header.site a[href]")) {
    if (a.getAttribute("href") === here) a.setAttribute("aria-current", "page");
  }
  let me = null;
  try {
    me = await session();
  } catch {
    me = null;
  }
  for (const el of document.querySelectorAll("[data-when=in]")) el.hidden = !me;
  for (const el of document.querySelectorAll("[data-when=out]")) el.hidden = !!me;
  const who = document.getElementById("nav-who");
  if (who) who.textContent = me ? me.email : "";
  const out = document.getElementById("nav-signout");
  if (out) {
    out.addEventListener("click", async () => {
      try {
        await api("POST", "/api/v1/account/logout");
      } finally {
        location.href = "/login";
      }
    });
  }
  return me;
}

// Send the visitor to sign in when the page needs an account.
export async function requireSignIn() {
  const me = await initNav();
  if (!me) location.replace("/login?next=" + encodeURIComponent(location.pathname));
  return me;
}
