// The security console (`/console`): find a user, see their risk and
// activity, act on it. Uses the admin API with the signed-in admin's token.
import { TokenWardenClient, ApiError } from './tokenwarden.js';
import { byId, el, when, ENDED, notify, onSubmit, describe } from './ui.js';
import { renderChart, renderTable } from './chart.js';

const auth = new TokenWardenClient();
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
let current = null; // the user shown: {id, username, disabled}

function state(name) {
  byId('loading').hidden = true;
  byId('login-form').hidden = name !== 'signed-out';
  byId('refused').hidden = name !== 'refused';
  byId('console').hidden = name !== 'console';
  document.body.dataset.state = name;
}

function refuse() {
  byId('refused-user').textContent = auth.user ? auth.user.username : 'this user';
  state('refused');
}

/** An admin API call; a 403 means this user is no admin. */
async function admin(path, options) {
  try {
    return await auth.json(path, options);
  } catch (e) {
    if (e instanceof ApiError && e.code === 'forbidden') refuse();
    throw e;
  }
}

auth.addEventListener('session', (e) => {
  const { user } = e.detail;
  if (!user.roles.includes('admin')) return refuse();
  if (document.body.dataset.state === 'console') return;
  byId('admin-name').textContent = user.username;
  state('console');
  loadEvents();
});

auth.addEventListener('ended', (e) => {
  notify(ENDED[e.detail.reason] || ENDED.signed_out, e.detail.reason === 'reused' ? 'error' : 'warn', e.detail.reason);
  state('signed-out');
});

onSubmit(byId('login-form'), async (data) => {
  await auth.login(data.get('username'), data.get('password'), { deviceName: 'Security console' });
  byId('login-form').reset();
});

byId('logout').addEventListener('click', () => auth.logout());

// ---- search --------------------------------------------------------------

onSubmit(byId('search-form'), async (data) => {
  const q = String(data.get('q') || '').trim();
  const list = byId('search-results');
  list.replaceChildren();
  if (UUID.test(q)) {
    await openUser(q);
    return '';
  }
  const page = await admin('/admin/users?limit=20&q=' + encodeURIComponent(q));
  list.replaceChildren(...page.items.map((u) => el('li', {},
    el('button', { type: 'button', class: 'secondary', 'data-user': u.id, onclick: () => openUser(u.id) },
      u.username, u.disabled ? ' (disabled)' : ''))));
  return page.items.length ? `${page.items.length} user${page.items.length === 1 ? '' : 's'} found${page.next ? ' (first 20)' : ''}.` : 'No user found.';
});

// ---- one user ------------------------------------------------------------

async function openUser(id) {
  const section = byId('user');
  section.dataset.loaded = '';
  const base = '/admin/users/' + encodeURIComponent(id);
  const [user, analysis, logs] = await Promise.all([
    admin(base).catch((e) => (e.status === 404 ? null : Promise.reject(e))),
    admin(base + '/token-analysis?days=7'),
    auditTrail(base),
  ]);
  current = {
    id,
    username: (user && user.username) || analysis.username,
    disabled: Boolean(user && user.disabled),
  };
  byId('user-title').textContent = current.username;
  byId('user-id').textContent = id;
  byId('user-roles').textContent = user ? user.roles.join(', ') : '–';
  byId('user-state').textContent = user ? (user.disabled ? 'Disabled' : 'Active') : '–';
  byId('user-created').textContent = when(user && user.created_at);
  byId('user-last-login').textContent = when(user && user.last_login_at);
  byId('toggle-disabled').textContent = current.disabled ? 'Enable account' : 'Disable account';
  byId('toggle-disabled').hidden = !user;
  byId('reset-password').hidden = !user;

  const risk = analysis.risk;
  const badge = byId('risk');
  badge.dataset.level = risk.level;
  badge.textContent = `${risk.level === 'high' ? '▲' : risk.level === 'medium' ? '◆' : '●'} ${risk.level} risk`;
  byId('risk-score').textContent = `score ${risk.score}, last ${analysis.days} days`;
  byId('risk-reasons').replaceChildren(...(risk.reasons.length ? risk.reasons : ['No warning signs.']).map((r) => el('li', {}, r)));
  const a = analysis.attempts;
  byId('user-attempts').textContent = `${a.total} (${a.succeeded} succeeded, ${a.failed} failed)`;
  byId('user-events').textContent = `${analysis.reuse_events} / ${analysis.anomaly_events}`;

  renderTable(byId('chart-table'), renderChart(byId('chart'), logs));
  fill('ips', analysis.distinct_ips.map((s) => [el('td', { class: 'mono' }, s.ip), ...seen(s)]));
  fill('user-agents', analysis.distinct_user_agents.map((s) => [el('td', { class: 'small' }, s.user_agent), ...seen(s)]));
  fill('live-sessions', ((user && user.live_sessions) || []).map((s) => [
    el('td', {}, s.device_name || 'Unnamed device', el('div', { class: 'muted small' }, s.last_user_agent || '')),
    el('td', {}, when(s.last_used_at)),
    el('td', { class: 'mono' }, s.last_ip || '–'),
    el('td', {}, when(s.created_at)),
    el('td', {}, when(s.expires_at)),
  ]), user ? 'No live session.' : 'Session details need the accounts API.');
  section.hidden = false;
  section.dataset.loaded = id;
  byId('user-title').focus?.();
}

/** The last week's audit rows of a user, newest first, at most 1000. */
async function auditTrail(base) {
  const rows = [];
  const since = Date.now() - 7 * 86400000;
  let before = null;
  for (let i = 0; i < 5; i += 1) {
    const page = await admin(base + '/refresh-logs?limit=200' + (before ? '&before=' + encodeURIComponent(before) : ''));
    rows.push(...page.items);
    const last = page.items[page.items.length - 1];
    if (!page.next || !last || Date.parse(last.at) < since) break;
    before = page.next;
  }
  return rows.filter((r) => Date.parse(r.at) >= since);
}

function seen(s) {
  return [el('td', { class: 'num' }, s.count), el('td', {}, when(s.first_seen)), el('td', {}, when(s.last_seen))];
}

function fill(tableId, rows, empty = 'Nothing recorded.') {
  const body = byId(tableId).tBodies[0];
  const columns = byId(tableId).tHead.rows[0].cells.length;
  body.replaceChildren(...(rows.length ? rows.map((cells) => el('tr', {}, ...cells)) : [el('tr', {}, el('td', { colspan: columns, class: 'muted' }, empty))]));
}

// ---- actions, each confirmed ---------------------------------------------

/** Asks in a modal dialog; resolves to null (cancelled) or {password}. */
function confirmAction(title, text, withPassword = false) {
  const dialog = byId('confirm');
  byId('confirm-title').textContent = title;
  byId('confirm-text').textContent = text;
  byId('confirm-password').hidden = !withPassword;
  const input = byId('confirm-new-password');
  input.value = '';
  input.required = withPassword;
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      resolve(dialog.returnValue === 'ok' ? { password: input.value } : null);
    }, { once: true });
    dialog.returnValue = '';
    dialog.showModal();
  });
}

async function act(title, text, action, withPassword = false) {
  if (!current) return;
  const answer = await confirmAction(title, text, withPassword);
  if (!answer) return;
  try {
    await action(answer);
    notify(`${title}: done.`, 'info');
    await openUser(current.id);
    loadEvents();
  } catch (e) {
    notify(`${title}: ${describe(e)}`, 'error');
  }
}

const userPath = () => '/admin/users/' + encodeURIComponent(current.id);

byId('revoke-all').addEventListener('click', () => act(
  'Revoke all sessions',
  `Sign ${current.username} out on every device? Their access tokens stop working at once.`,
  () => admin(userPath() + '/revoke-sessions', { method: 'POST' })));

byId('toggle-disabled').addEventListener('click', () => act(
  current.disabled ? 'Enable account' : 'Disable account',
  current.disabled ? `Let ${current.username} log in again?` : `Disable ${current.username}? Every session ends and they cannot log in until enabled.`,
  () => admin(userPath(), { method: 'PATCH', body: { disabled: !current.disabled } })));

byId('reset-password').addEventListener('click', () => act(
  'Reset password',
  `Set a new password for ${current.username}? Every session of theirs ends.`,
  ({ password }) => admin(userPath() + '/password', { method: 'POST', body: { new_password: password } }),
  true));

// ---- events across all users ---------------------------------------------

async function loadEvents() {
  try {
    const page = await admin('/admin/security-events?limit=25');
    fill('events', page.items.map((e) => [
      el('td', {}, when(e.created_at)),
      el('td', {}, e.kind.replace(/_/g, ' ')),
      el('td', {}, el('button', { type: 'button', class: 'secondary mono small', onclick: () => openUser(e.user_id) }, e.user_id)),
      el('td', { class: 'small mono' }, JSON.stringify(e.details)),
    ]), 'No security events.');
  } catch (e) {
    fill('events', [], describe(e));
  }
}

byId('reload-events').addEventListener('click', loadEvents);

auth.resume().then((ok) => { if (!ok && !auth.loggedIn) state('signed-out'); });
