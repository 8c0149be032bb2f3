// Token Warden browser client: one ES module, no dependencies.
//
// - The access token lives in this object's memory only, never in storage.
// - The refresh token lives only in the HttpOnly cookie the server sets;
//   script never sees it.
// - A refresh runs once for all tabs of the browser: the Web Locks API lets
//   one tab at a time refresh, and a BroadcastChannel hands the new access
//   token to the other tabs, so tabs never present the same refresh token
//   twice (which the server would take for theft).
// - Every request goes through `#send`, the one place that adds credentials
//   and DPoP proofs.
// - DPoP (RFC 9449, on by default where WebCrypto and IndexedDB exist): the
//   browser holds a non-extractable ECDSA P-256 key, created once and kept
//   in IndexedDB, and signs a proof for every login, refresh, logout and API
//   call. The server binds the session to that key, so a refresh cookie or
//   access token copied out of the browser is useless elsewhere: script can
//   use the key but no one can read it out.
//
// Usage:
//   import { TokenWardenClient } from './tokenwarden.js';
//   const auth = new TokenWardenClient({ baseUrl: 'https://auth.example.com' });
//   auth.addEventListener('session', (e) => render(e.detail.user));
//   auth.addEventListener('ended', (e) => showLogin(e.detail.reason));
//   await auth.resume();                      // after a page load
//   await auth.login('alice', 'password');
//   const me = await auth.json('/api/me');    // refreshes first when needed
//
// Events: `session` (logged in, or a new access token: detail {user,
// sessionId, expiresAt, tokenId}), `ended` (detail {reason}: `logout`,
// `reused`, `revoked`, `expired`, `signed_out`, `disabled`).

/** An error answer of the API (an RFC 9457 problem), or a network failure (status 0). */
export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || (status ? `HTTP ${status}` : 'The server cannot be reached'));
    this.name = 'ApiError';
    this.status = status;
    this.code = (problem && problem.code) || (status ? 'http_' + status : 'network_error');
    this.problem = problem || null;
  }
}

/** What each refresh failure means for the session. */
const ENDINGS = {
  token_reused: 'reused',
  session_revoked: 'revoked',
  token_expired: 'expired',
  missing_token: 'signed_out',
  invalid_token: 'signed_out',
  // A bound session whose key this browser no longer has (storage cleared).
  invalid_dpop_proof: 'signed_out',
};

const b64url = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)))
  .replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
const utf8 = (text) => new TextEncoder().encode(text);

/**
 * The browser's DPoP key: an ECDSA P-256 key pair whose private half cannot
 * be exported, made once per browser (per client name) and kept in
 * IndexedDB, which stores CryptoKey objects as they are.
 */
class DpopKey {
  #name;
  #pair = null;
  #jwk = null;

  constructor(name) { this.#name = name + '-dpop'; }

  static supported() {
    return typeof crypto === 'object' && crypto.subtle && typeof indexedDB === 'object';
  }

  /** A proof for `method` on `url`, with `ath` for an access token. */
  async proof(method, url, accessToken) {
    const pair = await this.#keys();
    const target = new URL(url, location.href);
    const claims = {
      htm: method,
      htu: target.origin + target.pathname,
      iat: Math.floor(Date.now() / 1000),
      jti: b64url(crypto.getRandomValues(new Uint8Array(16))),
    };
    if (accessToken) claims.ath = b64url(await crypto.subtle.digest('SHA-256', utf8(accessToken)));
    const header = { typ: 'dpop+jwt', alg: 'ES256', jwk: this.#jwk };
    const input = b64url(utf8(JSON.stringify(header))) + '.' + b64url(utf8(JSON.stringify(claims)));
    const signature = await crypto.subtle.sign(
      { name: 'ECDSA', hash: 'SHA-256' }, pair.privateKey, utf8(input));
    return input + '.' + b64url(signature);
  }

  async #keys() {
    if (this.#pair) return this.#pair;
    const create = async () => {
      let pair = await this.#load();
      if (!pair) {
        pair = await crypto.subtle.generateKey(
          { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']);
        await this.#save(pair);
      }
      return pair;
    };
    // One tab creates the key; the others wait and load it.
    const pair = navigator.locks && navigator.locks.request
      ? await navigator.locks.request(this.#name, create)
      : await create();
    const { kty, crv, x, y } = await crypto.subtle.exportKey('jwk', pair.publicKey);
    this.#jwk = { kty, crv, x, y };
    this.#pair = pair;
    return pair;
  }

  #db() {
    return new Promise((resolve, reject) => {
      const open = indexedDB.open(this.#name, 1);
      open.onupgradeneeded = () => open.result.createObjectStore('keys');
      open.onsuccess = () => resolve(open.result);
      open.onerror = () => reject(open.error);
    });
  }

  async #load() {
    const db = await this.#db();
    return new Promise((resolve, reject) => {
      const get = db.transaction('keys').objectStore('keys').get('current');
      get.onsuccess = () => resolve(get.result || null);
      get.onerror = () => reject(get.error);
    }).finally(() => db.close());
  }

  async #save(pair) {
    const db = await this.#db();
    return new Promise((resolve, reject) => {
      const tx = db.transaction('keys', 'readwrite');
      tx.objectStore('keys').put(pair, 'current');
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
    }).finally(() => db.close());
  }
}

/** Claims of a JWT, without verifying it (the server does that). */
function claimsOf(jwt) {
  try {
    const part = jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), '=')));
  } catch {
    return {};
  }
}

export class TokenWardenClient extends EventTarget {
  #base;
  #name;
  #token = null;
  #expiresAt = 0;
  #user = null;
  #sessionId = null;
  #tokenId = null;
  #lifetime = 0;
  #generation = 0;
  #timer = null;
  #inflight = null;
  #channel = null;
  #tokenType = 'Bearer';
  #dpop = null;

  /**
   * @param {object} [options]
   * @param {string} [options.baseUrl] the server's origin ('' for the page's own)
   * @param {string} [options.name] names the lock, channel and storage keys
   *   (tabs using the same name share one session)
   * @param {boolean} [options.dpop] bind sessions to this browser's key
   *   (default: wherever WebCrypto and IndexedDB exist)
   */
  constructor({ baseUrl = '', name = 'tokenwarden', dpop = true } = {}) {
    super();
    this.#base = baseUrl.replace(/\/+$/, '');
    this.#name = name;
    if (dpop && DpopKey.supported()) this.#dpop = new DpopKey(name);
    if (typeof BroadcastChannel === 'function') {
      this.#channel = new BroadcastChannel(name);
      this.#channel.onmessage = (e) => this.#onMessage(e.data);
    }
  }

  get user() { return this.#user; }
  get sessionId() { return this.#sessionId; }
  /** Milliseconds since the epoch when the access token expires (0: none). */
  get expiresAt() { return this.#expiresAt; }
  /** The access token's `jti`: safe to show, unlike the token. */
  get tokenId() { return this.#tokenId; }
  get loggedIn() { return this.#token !== null; }
  /** `DPoP` when the session is bound to this browser's key, else `Bearer`. */
  get tokenType() { return this.#tokenType; }

  /** Creates an account (it does not log in). */
  async register(username, password) {
    return this.#json('/auth/register', { method: 'POST', body: { username, password } });
  }

  /** Logs in; the server sets the refresh cookie. */
  async login(username, password, { deviceName } = {}) {
    const body = { username, password };
    if (deviceName) body.device_name = deviceName;
    const tokens = await this.#json('/auth/login', { method: 'POST', body });
    this.#adopt(tokens, true);
    return tokens.user;
  }

  /** After a page load: gets an access token if this browser has a session. */
  async resume() {
    if (this.loggedIn) return true;
    if (!this.#hint()) return false;
    try {
      return await this.refresh();
    } catch {
      return false;
    }
  }

  /**
   * A new access token, using the refresh cookie. Single flight: one
   * refresh at a time in this tab and across tabs; a tab that waited gets
   * the token another tab obtained. Resolves to whether a session goes on;
   * throws an ApiError when the server could not answer (503, network).
   */
  refresh() {
    if (!this.#inflight) {
      this.#inflight = this.#refreshAcrossTabs().finally(() => { this.#inflight = null; });
    }
    return this.#inflight;
  }

  /** Ends this session on the server, in every tab of this browser. */
  async logout() {
    try {
      await this.#send('/auth/logout', { method: 'POST' });
    } finally {
      this.#end('logout', true);
    }
  }

  /** Ends every session of the user (all devices). */
  async logoutAll() {
    await this.#json('/auth/logout-all', { method: 'POST', auth: true });
    this.#end('logout', true);
  }

  /** The user's live sessions. */
  sessions() { return this.#json('/auth/sessions', { auth: true }); }

  /** Ends one of the user's sessions ("sign out this device"). */
  async endSession(id) {
    if (id === this.#sessionId) return this.logout();
    await this.#json('/auth/sessions/' + encodeURIComponent(id), { method: 'DELETE', auth: true });
  }

  /** Changes the password; every other session of the user ends. */
  changePassword(currentPassword, newPassword) {
    return this.#json('/auth/password', {
      method: 'POST', auth: true,
      body: { current_password: currentPassword, new_password: newPassword },
    });
  }

  /**
   * An authenticated request to the API (path or absolute URL). Refreshes
   * first when the token is about to expire, and once more after a 401
   * `token_expired`. Resolves to the parsed JSON body (null for 204).
   */
  json(path, { method = 'GET', body } = {}) {
    return this.#json(path, { method, body, auth: true });
  }

  // ---- internals ------------------------------------------------------

  async #json(path, { method = 'GET', body, auth = false } = {}) {
    const res = await this.#send(path, { method, body, auth });
    if (res.status === 204) return null;
    const data = await res.json().catch(() => null);
    if (!res.ok) throw new ApiError(res.status, data);
    return data;
  }

  /** The one place requests are made. */
  async #send(path, { method = 'GET', body, auth = false, retried = false } = {}) {
    if (auth) await this.#fresh();
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const url = path.startsWith('http') ? path : this.#base + path;
    const bound = auth && this.#token && this.#tokenType === 'DPoP';
    if (auth && this.#token) headers.Authorization = (bound ? 'DPoP ' : 'Bearer ') + this.#token;
    // Proofs go with the refresh-token endpoints (which bind or check the
    // session's key) and with every request of a bound access token.
    if (this.#dpop && (bound || (!auth && path.startsWith('/auth/')))) {
      try {
        headers.DPoP = await this.#dpop.proof(method, url, bound ? this.#token : undefined);
      } catch {
        // No usable key (storage blocked, say): the session stays unbound.
      }
    }
    let res;
    try {
      res = await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: 'include',
        cache: 'no-store',
      });
    } catch {
      throw new ApiError(0, null);
    }
    if (auth && res.status === 401 && !retried) {
      const problem = await res.clone().json().catch(() => null);
      if (problem && problem.code === 'token_expired' && await this.refresh()) {
        return this.#send(path, { method, body, auth, retried: true });
      }
      if (problem && problem.code === 'session_revoked') this.#end('revoked', true);
    }
    return res;
  }

  /** Refreshes when the access token has less than a fifth of its life (or 30 s) left. */
  async #fresh() {
    if (this.#token && Date.now() < this.#expiresAt - this.#margin()) return;
    if (this.#token || this.#hint()) await this.refresh();
  }

  #margin() {
    const life = this.#lifetime || 60000;
    return Math.min(30000, Math.max(250, life / 5));
  }

  async #refreshAcrossTabs() {
    const askedAt = Date.now();
    const generation = this.#generation;
    const run = async () => {
      // Another tab handed over a token (or ended the session) while this
      // one waited for the lock; or it refreshed after this one asked, and
      // its message is on the way.
      if (this.#generation !== generation
          || (this.#stamp() >= askedAt && await this.#handover(generation, 2000))) {
        return this.#token !== null;
      }
      const res = await this.#send('/auth/refresh', { method: 'POST' });
      const data = await res.json().catch(() => null);
      if (res.ok) {
        this.#adopt(data, true);
        return true;
      }
      const reason = res.status === 401 && data && ENDINGS[data.code];
      if (reason) {
        this.#end(reason, true);
        return false;
      }
      throw new ApiError(res.status, data);
    };
    if (navigator.locks && navigator.locks.request) {
      return navigator.locks.request(this.#name + ':refresh', run);
    }
    return run();
  }

  /** Waits up to `ms` for another tab's news (a token, or the end). */
  #handover(generation, ms) {
    return new Promise((resolve) => {
      const started = Date.now();
      const check = () => {
        if (this.#generation !== generation) resolve(true);
        else if (Date.now() - started >= ms) resolve(false);
        else setTimeout(check, 20);
      };
      check();
    });
  }

  /** Takes a token response (ours, or another tab's via the channel). */
  #adopt(tokens, announce) {
    const expiresAt = tokens.expires_at || Date.now() + tokens.expires_in * 1000;
    this.#token = tokens.access_token;
    this.#tokenType = tokens.token_type === 'DPoP' ? 'DPoP' : 'Bearer';
    this.#expiresAt = expiresAt;
    this.#lifetime = tokens.expires_in * 1000;
    this.#user = tokens.user;
    this.#sessionId = tokens.session_id;
    this.#tokenId = claimsOf(tokens.access_token).jti || null;
    this.#generation += 1;
    if (announce) {
      this.#store('hint', '1');
      this.#store('refreshed', String(Date.now()));
      this.#post({ type: 'tokens', tokens: { ...tokens, expires_at: expiresAt } });
    }
    this.#schedule();
    this.dispatchEvent(new CustomEvent('session', {
      detail: { user: this.#user, sessionId: this.#sessionId, expiresAt, tokenId: this.#tokenId },
    }));
  }

  #end(reason, announce) {
    const was = this.#token !== null || this.#hint();
    this.#token = null;
    this.#tokenType = 'Bearer';
    this.#expiresAt = 0;
    this.#user = null;
    this.#sessionId = null;
    this.#tokenId = null;
    this.#generation += 1;
    clearTimeout(this.#timer);
    this.#store('hint', null);
    if (announce) this.#post({ type: 'ended', reason });
    if (was || announce) this.dispatchEvent(new CustomEvent('ended', { detail: { reason } }));
  }

  /** A silent refresh shortly before the access token expires. */
  #schedule() {
    clearTimeout(this.#timer);
    const delay = Math.max(0, this.#expiresAt - this.#margin() - Date.now());
    this.#timer = setTimeout(() => { this.refresh().catch(() => this.#retryLater()); }, delay);
  }

  /** After a failed silent refresh (server busy, offline): try again while the token lasts. */
  #retryLater() {
    clearTimeout(this.#timer);
    if (!this.#token) return;
    this.#timer = setTimeout(() => { this.refresh().catch(() => this.#retryLater()); }, 2000);
  }

  #onMessage(message) {
    if (!message || typeof message !== 'object') return;
    if (message.type === 'tokens' && message.tokens) this.#adopt(message.tokens, false);
    else if (message.type === 'ended') this.#end(String(message.reason), false);
  }

  #post(message) {
    if (this.#channel) this.#channel.postMessage(message);
  }

  // Non-secret markers in localStorage: "this browser has a session" (so a
  // page load without one does not call /auth/refresh in vain) and when a
  // tab last refreshed.
  // Without storage, every page load asks the server.
  #hint() { const h = this.#read('hint'); return h === undefined || h === '1'; }
  #stamp() { return Number(this.#read('refreshed') || 0); }

  #read(key) {
    try { return localStorage.getItem(this.#name + ':' + key); } catch { return undefined; }
  }

  #store(key, value) {
    try {
      if (value === null) localStorage.removeItem(this.#name + ':' + key);
      else localStorage.setItem(this.#name + ':' + key, value);
    } catch { /* storage disabled: see #hint */ }
  }
}
