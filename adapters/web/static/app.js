// The reference web client (`/`): log in, the access token's countdown and
// silent refresh, sessions, password change, log out.
import { TokenWardenClient } from './tokenwarden.js';
import { byId, el, when, ENDED, notify, onSubmit, describe } from './ui.js';

// `/?dpop=off` shows the page without a DPoP key: sessions are then bound
// to nothing, and a copied refresh cookie works elsewhere until reuse
// detection catches it.
const auth = new TokenWardenClient({ dpop: new URLSearchParams(location.search).get('dpop') !== 'off' });
let obtainedAt = 0;

function show(signedIn) {
  byId('loading').hidden = true;
  byId('signed-in').hidden = !signedIn;
  byId('signed-out').hidden = signedIn;
  document.body.dataset.state = signedIn ? 'signed-in' : 'signed-out';
}

auth.addEventListener('session', (e) => {
  const { user, sessionId, tokenId } = e.detail;
  const first = byId('signed-in').hidden;
  obtainedAt = Date.now();
  byId('me-username').textContent = user.username;
  byId('me-roles').textContent = user.roles.join(', ');
  byId('me-id').textContent = user.id;
  byId('me-session').textContent = sessionId;
  byId('token-id').textContent = tokenId || '–';
  byId('binding').textContent = auth.tokenType === 'DPoP'
    ? "this browser's key (DPoP): a copied token is useless elsewhere"
    : 'nothing (bearer token)';
  byId('token-obtained').textContent = new Date(obtainedAt).toLocaleTimeString();
  show(true);
  if (first) {
    notify('');
    loadSessions();
  }
});

auth.addEventListener('ended', (e) => {
  const reason = e.detail.reason;
  const kind = reason === 'reused' ? 'error' : reason === 'logout' ? 'info' : 'warn';
  notify(ENDED[reason] || ENDED.signed_out, kind, reason);
  show(false);
});

function tick() {
  const left = auth.expiresAt - Date.now();
  const total = auth.expiresAt - obtainedAt;
  byId('token-countdown').textContent = auth.loggedIn ? `${Math.max(0, left / 1000).toFixed(1)} s` : '–';
  byId('token-progress').value = auth.loggedIn && total > 0 ? Math.max(0, Math.round((1000 * left) / total)) : 0;
}
setInterval(tick, 200);

async function loadSessions() {
  const body = byId('sessions').tBodies[0];
  try {
    const sessions = await auth.sessions();
    body.replaceChildren(...sessions.map((s) => el('tr', { 'data-session': s.id },
      el('td', {}, s.device_name || 'Unnamed device', s.current ? el('span', { class: 'badge' }, 'this device') : null,
        el('div', { class: 'muted small' }, s.last_user_agent || '')),
      el('td', {}, when(s.last_used_at)),
      el('td', { class: 'mono' }, s.last_ip || '–'),
      el('td', {}, when(s.created_at)),
      el('td', {}, el('button', {
        type: 'button', class: 'secondary',
        'aria-label': `Sign out ${s.current ? 'this device' : (s.device_name || 'the device')} (${when(s.last_used_at)})`,
        onclick: () => endSession(s),
      }, 'Sign out this device')))));
  } catch (e) {
    body.replaceChildren(el('tr', {}, el('td', { colspan: 5 }, describe(e))));
  }
}

async function endSession(s) {
  try {
    await auth.endSession(s.id);
    if (!s.current) loadSessions();
  } catch (e) {
    notify(describe(e), 'error');
  }
}

onSubmit(byId('login-form'), async (data) => {
  await auth.login(data.get('username'), data.get('password'), { deviceName: deviceName() });
  byId('login-form').reset();
});

onSubmit(byId('register-form'), async (data) => {
  await auth.register(data.get('username'), data.get('password'));
  byId('login-username').value = data.get('username');
  byId('register-form').reset();
  return 'Account created. You can log in now.';
});

onSubmit(byId('password-form'), async () => {
  await auth.changePassword(byId('current-password').value, byId('new-password').value);
  byId('password-form').reset();
  loadSessions();
  return 'Password changed. Your other sessions were signed out.';
});

byId('logout').addEventListener('click', () => auth.logout());
byId('reload-sessions').addEventListener('click', loadSessions);
byId('refresh-now').addEventListener('click', () => auth.refresh().catch((e) => notify(describe(e), 'error')));
byId('logout-all').addEventListener('click', async () => {
  if (!window.confirm('Sign out on every device, this one included?')) return;
  try {
    await auth.logoutAll();
  } catch (e) {
    notify(describe(e), 'error');
  }
});

/** A device name from the browser's own description, e.g. "Chrome on Linux". */
function deviceName() {
  const ua = navigator.userAgent;
  const browser = /Edg\//.test(ua) ? 'Edge' : /Firefox\//.test(ua) ? 'Firefox' : /Chrom/.test(ua) ? 'Chrome' : /Safari\//.test(ua) ? 'Safari' : 'Browser';
  const os = /Android/.test(ua) ? 'Android' : /iPhone|iPad/.test(ua) ? 'iOS' : /Windows/.test(ua) ? 'Windows' : /Mac OS/.test(ua) ? 'macOS' : /Linux/.test(ua) ? 'Linux' : 'unknown system';
  return `${browser} on ${os}`;
}

// For tests and the curious: the client, without its token.
window.tokenwarden = auth;

auth.resume().then((ok) => { if (!ok && !auth.loggedIn) show(false); });
