// Switchboard's local console: a chat workspace talking to the bot over JSON and a websocket.
//
// Every piece of markup that holds user text arrives from the server already escaped (cards and
// forms by cards/html.py, plain text by markupsafe); this script inserts that HTML as it is and builds
// everything else with createElement/textContent. No inline scripts or styles: the page runs under a
// strict Content-Security-Policy.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const state = {
    user: null,
    mode: null, // "dev" (the user picker, loopback only) or "oidc" (signed in at a provider)
    csrf: null, // sent back on every change, so another site's page cannot act as this person
    channel: null,
    channels: [],
    dm: null, // this user's direct message with the bot: "@alice"
    users: [],
    workflows: [],
    suggestions: {}, // channel -> the run its empty view suggests (one this person can finish alone)
    messages: new Map(), // id -> message
    unread: new Map(), // channel -> count
    dismissed: new Set(), // ephemeral messages put away (in this page only)
    thread: null, // the open thread's parent id
    form: null, // the open dialog: {form, state, form_id, channel, thread}
    ws: null,
    retries: 0,
  };

  // ---------------------------------------------------------------- server calls

  async function api(path, body) {
    const headers = { "Content-Type": "application/json", "X-CSRF-Token": state.csrf || "" };
    const init = body === undefined ? {} : { method: "POST", headers, body: JSON.stringify(body) };
    let res;
    try {
      res = await fetch(path, init);
    } catch (err) {
      throw new Error("Switchboard is not reachable. Is it still running?");
    }
    let data = null;
    try {
      data = await res.json();
    } catch (err) {
      data = { error: `The server answered ${res.status}.` };
    }
    if (!res.ok) {
      const err = new Error(data.error || `The server answered ${res.status}.`);
      err.status = res.status;
      err.data = data;
      throw err;
    }
    return data;
  }

  // Not signed in: dev mode signs in as the remembered (or first) user; oidc mode goes to the provider.
  async function signIn(data) {
    if (data.mode !== "dev") {
      location.href = data.sign_in || "/auth/login";
      return new Promise(() => {}); // the page is leaving
    }
    const remembered = localStorage.getItem("switchboard.user");
    const user = (data.users || []).includes(remembered) ? remembered : (data.users || [])[0];
    await api("/auth/dev", { user });
  }

  const query = (params) => new URLSearchParams(params).toString();
  const places = () => (state.dm ? [...state.channels, state.dm] : state.channels);
  const label = (channel) => (channel === state.dm ? "Direct message" : `#${channel}`);

  async function loadState(reset) {
    if (!state.csrf) {
      const session = await api("/auth/session");
      if (!session.signed_in) await signIn(session);
    }
    let data;
    try {
      data = await api("/api/state");
    } catch (err) {
      if (err.status !== 401) throw err;
      await signIn(err.data); // the session ended (it expired, or the server's mode changed)
      data = await api("/api/state");
    }
    state.user = data.user;
    state.mode = data.mode;
    state.csrf = data.csrf;
    state.me = data.me;
    state.channels = data.channels;
    state.dm = data.dm || null;
    state.users = data.users;
    state.workflows = data.workflows || [];
    state.suggestions = data.suggestions || {};
    if (!places().includes(state.channel)) state.channel = state.channels[0];
    if (reset) state.messages.clear();
    for (const m of data.messages) {
      if (state.dismissed.has(m.id)) continue;
      const known = state.messages.get(m.id);
      if (!known || known.updated_at <= m.updated_at) state.messages.set(m.id, m);
    }
    renderSidebar();
    renderChannel();
    if (state.thread !== null) renderThread();
  }

  // ---------------------------------------------------------------- live updates

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/ws?${query({ csrf: state.csrf })}`);
    state.ws = ws;
    setConnection("connecting");
    ws.addEventListener("open", () => {
      state.retries = 0;
      setConnection("live");
      // Whatever happened while the socket was down (or before it opened) comes with the state.
      loadState(false).catch((err) => toast(err.message));
    });
    ws.addEventListener("message", (event) => {
      let data;
      try {
        data = JSON.parse(event.data);
      } catch (err) {
        return; // "pong"
      }
      if ((data.type === "message" || data.type === "update") && data.message) upsert(data.message);
    });
    ws.addEventListener("close", (event) => {
      if (state.ws !== ws) return; // replaced on purpose (a different user was picked)
      setConnection("offline");
      if (event.code === 4401) state.csrf = null; // the session ended: sign in again before reconnecting
      retryLater(ws);
    });
  }

  function retryLater(ws) {
    const delay = Math.min(500 * 2 ** state.retries, 5000);
    state.retries += 1;
    setTimeout(async () => {
      if (state.ws !== ws) return;
      if (!state.csrf || state.retries > 3) {
        // The session may have ended, or the server restarted with another key: reload the state,
        // signing in again if need be, so the socket opens with a valid token.
        state.csrf = null;
        try {
          await loadState(false);
        } catch (err) {
          return retryLater(ws);
        }
      }
      connect();
    }, delay);
  }

  function setConnection(kind) {
    const text = { connecting: "Connecting…", live: "Live", offline: "Reconnecting…" }[kind];
    $("conn").dataset.state = kind;
    $("conn-text").textContent = text;
  }

  // ---------------------------------------------------------------- messages

  function upsert(m) {
    if (state.dismissed.has(m.id)) return;
    const known = state.messages.get(m.id);
    if (known && known.updated_at > m.updated_at) return;
    state.messages.set(m.id, m);
    const here = m.channel === state.channel;
    if (m.thread_id === null) {
      if (here) place($("messages"), m, false);
      else if (!known) bumpUnread(m.channel);
      if (state.thread === m.id) place($("thread-messages"), m, true); // the open thread's parent
    } else {
      const parent = document.querySelector(`#messages .msg[data-id="${m.thread_id}"]`);
      const parentMsg = state.messages.get(m.thread_id);
      if (parent && parentMsg) keepBottom($("messages"), () => parent.replaceWith(renderMessage(parentMsg, false)));
      if (state.thread === m.thread_id) keepBottom($("thread-messages"), () => renderThread(false));
      else if (!here && !known) bumpUnread(m.channel);
    }
  }

  function bumpUnread(channel) {
    state.unread.set(channel, (state.unread.get(channel) || 0) + 1);
    renderChannels();
  }

  // Put a message in a list: replace its node when it is there (an edit), else insert it in id order.
  function place(list, m, inThread) {
    const node = renderMessage(m, inThread);
    const old = list.querySelector(`.msg[data-id="${m.id}"]`);
    if (old) return keepBottom(list, () => old.replaceWith(node));
    const later = [...list.querySelectorAll(":scope > .msg")].find((el) => Number(el.dataset.id) > m.id);
    keepBottom(list, () => {
      list.querySelector(":scope > .empty")?.remove();
      list.insertBefore(node, later || null);
    }, !m.bot);
  }

  // A list scrolled to its end stays there as messages arrive or grow (a status card gaining steps).
  function keepBottom(list, change, force) {
    const stick = force || list.scrollHeight - list.scrollTop - list.clientHeight < 80;
    change();
    if (stick) list.scrollTop = list.scrollHeight;
  }

  function replies(id) {
    return [...state.messages.values()].filter((m) => m.thread_id === id).sort((a, b) => a.id - b.id);
  }

  function isCommand(text) {
    return text.startsWith("/") && !text.startsWith("//");
  }

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // One time format everywhere: the viewer's local time on a 24-hour clock, with UTC on hover. Cards
  // write moments as "14:02 UTC" (the same text goes to Slack and Discord); the page shows them local.
  const LOCAL = { hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
  const UTC_TIME = /\b([01]\d|2[0-3]):([0-5]\d) UTC\b/g;

  function clock(seconds) {
    return new Date(seconds * 1000).toLocaleTimeString([], LOCAL);
  }

  function utc(seconds) {
    const d = new Date(seconds * 1000);
    const day = d.toLocaleDateString("en-GB", { timeZone: "UTC", day: "numeric", month: "short", year: "numeric" });
    return `${d.toISOString().slice(11, 16)} UTC, ${day}`;
  }

  function timeNode(seconds, text) {
    const node = el("time", "msg__time", text ?? clock(seconds));
    node.dateTime = new Date(seconds * 1000).toISOString();
    node.title = utc(seconds);
    return node;
  }

  // "HH:MM UTC" in a card names a moment near the message's own time: the nearest such moment.
  function moment(hh, mm, near) {
    const day = new Date(near * 1000);
    const base = Date.UTC(day.getUTCFullYear(), day.getUTCMonth(), day.getUTCDate(), Number(hh), Number(mm)) / 1000;
    return [base - 86400, base, base + 86400].reduce((a, b) => (Math.abs(b - near) < Math.abs(a - near) ? b : a));
  }

  function localTimes(root, near) {
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    const found = [];
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      if (UTC_TIME.test(node.data)) found.push(node);
      UTC_TIME.lastIndex = 0;
    }
    for (const node of found) {
      const parts = document.createDocumentFragment();
      let at = 0;
      for (const match of node.data.matchAll(UTC_TIME)) {
        parts.append(document.createTextNode(node.data.slice(at, match.index)));
        const seconds = moment(match[1], match[2], near);
        const time = timeNode(seconds);
        time.className = "local-time";
        parts.append(time);
        at = match.index + match[0].length;
      }
      parts.append(document.createTextNode(node.data.slice(at)));
      node.replaceWith(parts);
    }
  }

  function avatar(name, bot) {
    if (bot) {
      const box = el("span", "avatar avatar--bot");
      const img = el("img");
      img.src = "/static/logo.svg";
      img.alt = "";
      box.append(img);
      return box;
    }
    const box = el("span", `avatar avatar--${hue(name)}`, name.slice(0, 1).toUpperCase());
    box.setAttribute("aria-hidden", "true");
    return box;
  }

  function hue(name) {
    let h = 0;
    for (const ch of name) h = (h * 31 + ch.charCodeAt(0)) % 997;
    return h % 8;
  }

  function renderMessage(m, inThread) {
    const node = el("article", "msg");
    node.dataset.id = String(m.id);
    node.id = `${inThread ? "t" : "m"}-${m.id}`;
    if (m.bot) node.classList.add("msg--bot");
    if (m.ephemeral) node.classList.add("msg--ephemeral");
    if (m.card && m.card.status) node.dataset.status = m.card.status;

    const main = el("div", "msg__main");
    const meta = el("div", "msg__meta");
    meta.append(el("span", "msg__author", m.bot ? "Switchboard" : m.author));
    if (m.bot) meta.append(el("span", "msg__app", "App"));
    const time = timeNode(m.created_at);
    if (m.updated_at > m.created_at + 0.5) time.title += ` · edited ${clock(m.updated_at)} (${utc(m.updated_at)})`;
    meta.append(time);
    main.append(meta);

    if (m.ephemeral) {
      const note = el("div", "msg__only");
      note.append(el("span", "msg__eye"), el("span", "", "Only visible to you"));
      const dismiss = el("button", "link", "Dismiss");
      dismiss.type = "button";
      dismiss.dataset.dismiss = String(m.id);
      note.append(dismiss);
      main.append(note);
    }

    const body = el("div", "msg__body");
    body.innerHTML = m.html; // escaped on the server; see the note at the top
    format(body);
    localTimes(body, m.updated_at);
    main.append(body);

    if (!inThread && m.thread_id === null) {
      const thread = replies(m.id);
      if (thread.length) {
        const link = el("button", "msg__replies");
        link.type = "button";
        link.dataset.thread = String(m.id);
        const faces = el("span", "msg__faces");
        for (const r of thread.slice(-3)) faces.append(avatar(r.author, r.bot));
        link.append(faces, el("strong", "", `${thread.length} ${thread.length === 1 ? "reply" : "replies"}`));
        const last = el("span", "msg__last", "Last reply ");
        last.append(timeNode(thread[thread.length - 1].created_at));
        link.append(last);
        main.append(link);
        node.classList.add("msg--has-thread");
      }
      const tools = el("div", "msg__tools");
      const open = el("button", "icon-btn", "");
      open.type = "button";
      open.dataset.thread = String(m.id);
      open.title = "Reply in thread";
      open.setAttribute("aria-label", "Reply in thread");
      open.append(el("span", "icon-reply"));
      tools.append(open);
      node.append(tools);
    }
    node.prepend(avatar(m.author, m.bot));
    node.append(main);
    return node;
  }

  // Light formatting of message text, as chat apps do: ```code blocks```, `code` and *bold*.
  // It works on text nodes only, so it cannot turn text into markup.
  function format(root) {
    for (const block of root.querySelectorAll(".msg__text, .card__text")) {
      const text = block.textContent;
      if (!/[`*]/.test(text)) continue;
      block.textContent = "";
      const parts = text.split(/```\n?([\s\S]*?)```/);
      parts.forEach((part, i) => {
        if (i % 2 === 1) block.append(el("pre", "code-block", part.replace(/\n$/, "")));
        else inline(block, part);
      });
    }
  }

  function inline(parent, text) {
    const re = /`([^`\n]+)`|\*([^*\n]+)\*/g;
    let at = 0;
    for (const match of text.matchAll(re)) {
      parent.append(document.createTextNode(text.slice(at, match.index)));
      parent.append(match[1] !== undefined ? el("code", "", match[1]) : el("strong", "", match[2]));
      at = match.index + match[0].length;
    }
    parent.append(document.createTextNode(text.slice(at)));
  }

  // ---------------------------------------------------------------- layout

  function renderSidebar() {
    renderChannels();
    const list = $("workflow-list");
    list.replaceChildren();
    for (const w of state.workflows) {
      const item = el("li");
      const button = el("button", "nav-item nav-item--workflow");
      button.type = "button";
      button.dataset.fill = `/workflow run ${w.name} `;
      button.title = w.description || w.name;
      button.append(el("span", "nav-item__icon icon-bolt"), el("span", "nav-item__label", w.name));
      item.append(button);
      list.append(item);
    }
    if (!state.workflows.length) list.append(el("li", "nav-empty", "No workflows yet"));

    const picker = $("user-picker");
    picker.replaceChildren();
    for (const u of state.users) {
      const groups = u.groups.length ? u.groups.join(", ") : "no groups";
      const option = el("option", "", `${u.name} — ${groups}${u.admin ? " (admin)" : ""}`);
      option.value = u.name;
      option.selected = u.name === state.user;
      picker.append(option);
    }
    const me = state.me;
    $("mode").hidden = state.mode !== "dev";
    picker.hidden = state.mode !== "dev";
    $("sign-out").hidden = state.mode === "dev";
    const face = $("me-avatar");
    face.className = `avatar avatar--me avatar--${hue(state.user)}`;
    face.textContent = state.user.slice(0, 1).toUpperCase();
    $("me-name").textContent = state.user;
    const groups = $("me-groups");
    groups.replaceChildren();
    if (me && me.admin) groups.append(el("span", "chip chip--admin", "admin"));
    for (const g of me ? me.groups : []) groups.append(el("span", "chip", g));
    if (me && !me.groups.length && !me.admin) groups.append(el("span", "chip chip--none", "no groups"));
  }

  function renderChannels() {
    $("channel-list").replaceChildren(...state.channels.map((c) => navItem(c, "#", c)));
    $("dm-list").replaceChildren(...(state.dm ? [navItem(state.dm, "@", "Direct message")] : []));
  }

  function navItem(channel, icon, text) {
    const item = el("li");
    const button = el("button", "nav-item");
    button.type = "button";
    button.dataset.channel = channel;
    const unread = state.unread.get(channel) || 0;
    if (channel === state.channel) {
      button.classList.add("is-active");
      button.setAttribute("aria-current", "page");
    }
    if (unread) button.classList.add("is-unread");
    button.append(el("span", "nav-item__icon", icon), el("span", "nav-item__label", text));
    if (unread) button.append(el("span", "nav-item__badge", String(unread)));
    item.append(button);
    return item;
  }

  function renderChannel() {
    const dm = state.channel === state.dm;
    $("channel-mark").textContent = dm ? "@" : "#";
    $("channel-name").textContent = dm ? "Direct message" : state.channel;
    $("box").placeholder = dm
      ? "Message Switchboard  —  ask anything, or try /human"
      : `Message #${state.channel}  —  try /workflow run`;
    document.title = `${label(state.channel)} · Switchboard`;
    const list = $("messages");
    const top = [...state.messages.values()]
      .filter((m) => m.channel === state.channel && m.thread_id === null)
      .sort((a, b) => a.id - b.id);
    list.replaceChildren(...top.map((m) => renderMessage(m, false)));
    if (!top.length) list.append(emptyChannel());
    list.scrollTop = list.scrollHeight;
  }

  function emptyChannel() {
    const box = el("div", "empty");
    if (state.channel === state.dm) {
      box.append(el("div", "empty__mark", "@"));
      box.append(el("h2", "empty__title", "Your direct message with Switchboard"));
      box.append(el("p", "empty__text", "Only you can see it. Ask the assistant anything; it can hand you to a person."));
      return box;
    }
    box.append(el("div", "empty__mark", "#"));
    box.append(el("h2", "empty__title", `This is the very beginning of #${state.channel}`));
    box.append(el("p", "empty__text", "Start a workflow here and watch its status card update live. Try:"));
    const tries = el("div", "empty__tries");
    // A run this person can see through on their own (no approval waiting on someone else).
    const suggestion = (state.suggestions || {})[state.channel];
    const ideas = ["/workflow list", "/workflow help"];
    if (suggestion) ideas.push(suggestion.endsWith("=") ? suggestion : `${suggestion} `);
    for (const idea of ideas) {
      const chip = el("button", "try", idea.trim());
      chip.type = "button";
      chip.dataset.fill = idea;
      tries.append(chip);
    }
    box.append(tries);
    return box;
  }

  function switchChannel(channel) {
    if (!places().includes(channel)) return;
    state.channel = channel;
    state.unread.delete(channel);
    if (location.hash !== `#${channel}`) history.replaceState(null, "", `#${channel}`);
    const parent = state.messages.get(state.thread);
    if (parent && parent.channel !== channel) closeThread();
    renderChannels();
    renderChannel();
    $("box").focus();
  }

  async function switchUser(user) {
    try {
      await api("/auth/dev", { user });
    } catch (err) {
      return toast(err.message);
    }
    state.user = user;
    localStorage.setItem("switchboard.user", user);
    const old = state.ws;
    state.ws = null;
    if (old) old.close();
    closeThread();
    await loadState(true).catch((err) => toast(err.message));
    connect();
  }

  // ---------------------------------------------------------------- threads

  function openThread(id) {
    state.thread = id;
    $("thread").hidden = false;
    $("app").classList.add("has-thread");
    renderThread(true);
    $("thread-box").focus();
  }

  function closeThread() {
    state.thread = null;
    $("thread").hidden = true;
    $("app").classList.remove("has-thread");
  }

  function renderThread(opening) {
    const parent = state.messages.get(state.thread);
    if (!parent) return closeThread();
    $("thread-channel").textContent = label(parent.channel);
    const list = $("thread-messages");
    const items = [renderMessage(parent, true)];
    const thread = replies(parent.id);
    const divider = el("div", "thread__divider");
    divider.append(el("span", "", thread.length ? `${thread.length} ${thread.length === 1 ? "reply" : "replies"}` : "No replies yet"));
    items.push(divider, ...thread.map((m) => renderMessage(m, true)));
    const keep = list.scrollTop;
    list.replaceChildren(...items);
    list.scrollTop = opening ? 0 : keep; // a thread opens at its parent, as in Slack
  }

  // ---------------------------------------------------------------- the message boxes

  class Composer {
    constructor(form, box, hints, thread) {
      Object.assign(this, { form, box, hints, thread, items: [], active: -1, seq: 0, timer: null });
      form.addEventListener("submit", (e) => {
        e.preventDefault();
        this.send();
      });
      box.addEventListener("input", () => {
        this.grow();
        this.suggest();
      });
      box.addEventListener("keydown", (e) => this.key(e));
      box.addEventListener("blur", () => setTimeout(() => this.close(), 150));
      hints.addEventListener("mousedown", (e) => {
        const item = e.target.closest(".hint");
        if (!item) return;
        e.preventDefault();
        this.pick(Number(item.dataset.index));
      });
    }

    where() {
      return { channel: state.channel, thread: this.thread() };
    }

    grow() {
      this.box.style.height = "auto";
      this.box.style.height = `${Math.min(this.box.scrollHeight, 200)}px`;
    }

    fill(text) {
      this.box.value = text;
      this.box.focus();
      this.box.setSelectionRange(text.length, text.length);
      this.grow();
      this.suggest();
    }

    key(e) {
      const open = !this.hints.hidden && this.items.length;
      if (open && (e.key === "ArrowDown" || e.key === "ArrowUp")) {
        e.preventDefault();
        const step = e.key === "ArrowDown" ? 1 : -1;
        this.active = (this.active + step + this.items.length) % this.items.length;
        this.drawHints();
      } else if (open && e.key === "Tab") {
        e.preventDefault();
        this.pick(Math.max(this.active, 0));
      } else if (open && e.key === "Escape") {
        e.preventDefault();
        this.close();
      } else if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        // Enter takes a suggestion only when one was chosen with the arrows; otherwise it sends.
        if (open && this.active >= 0) this.pick(this.active);
        else this.send();
      }
    }

    suggest() {
      clearTimeout(this.timer);
      const text = this.box.value;
      if (!isCommand(text)) return this.close();
      this.timer = setTimeout(async () => {
        const seq = ++this.seq;
        try {
          const data = await api(`/api/hints?${query({ channel: state.channel, text })}`);
          if (seq !== this.seq || this.box.value !== text) return; // typed on meanwhile
          this.items = data.hints;
          this.active = -1;
          this.drawHints();
        } catch (err) {
          this.close();
        }
      }, 60);
    }

    drawHints() {
      this.hints.replaceChildren();
      if (!this.items.length) return this.close();
      this.items.forEach((h, i) => {
        const item = el("div", "hint");
        item.setAttribute("role", "option");
        item.dataset.index = String(i);
        if (i === this.active) {
          item.classList.add("is-active");
          item.setAttribute("aria-selected", "true");
        }
        item.append(el("span", "hint__label", h.label));
        if (h.detail) item.append(el("span", "hint__detail", h.detail));
        this.hints.append(item);
      });
      const foot = el("div", "hints__foot", "Tab to complete · ↑↓ to choose · Enter to send");
      this.hints.append(foot);
      this.hints.hidden = false;
    }

    close() {
      clearTimeout(this.timer);
      this.seq += 1;
      this.items = [];
      this.hints.hidden = true;
    }

    pick(index) {
      const hint = this.items[index];
      if (hint) this.fill(hint.value);
    }

    async send() {
      const text = this.box.value.trim();
      if (!text) return;
      this.close();
      this.box.value = "";
      this.grow();
      const where = this.where();
      try {
        // A "// note" is a message (agents write notes so), not a command.
      const path = isCommand(text) ? "/api/command" : "/api/message";
        const res = await api(path, { ...where, text });
        handleReply(res, where);
      } catch (err) {
        if (!this.box.value) this.box.value = text; // give the text back to fix it
        this.grow();
        toast(err.message);
      }
    }
  }

  // ---------------------------------------------------------------- replies, buttons, dialogs

  function handleReply(res, where) {
    if (res.message) upsert(res.message);
    if (res.kind === "form") openForm(res.form, where);
  }

  async function press(button) {
    const article = button.closest(".msg");
    const msg = article && state.messages.get(Number(article.dataset.id));
    if (!msg) return;
    if (button.dataset.confirm !== undefined) {
      const ok = await confirmDialog(button.dataset);
      if (!ok) return;
    }
    button.disabled = true;
    button.classList.add("is-busy");
    try {
      const res = await api("/api/click", {
        channel: msg.channel,
        message_id: msg.id,
        action_id: button.dataset.action,
      });
      handleReply(res, { channel: msg.channel, thread: msg.thread_id });
    } catch (err) {
      toast(err.message);
    } finally {
      button.disabled = false; // the card is usually redrawn by then
      button.classList.remove("is-busy");
    }
  }

  function confirmDialog(data) {
    const dialog = $("confirm-dialog");
    $("confirm-title").textContent = data.confirmTitle || "Are you sure?";
    $("confirm-text").textContent = data.confirm || "";
    $("confirm-yes").textContent = data.confirmYes || "Yes";
    $("confirm-no").textContent = data.confirmNo || "Cancel";
    return new Promise((resolve) => {
      const done = (answer) => {
        $("confirm-yes").onclick = null;
        $("confirm-no").onclick = null;
        dialog.onclose = null;
        if (dialog.open) dialog.close();
        resolve(answer);
      };
      $("confirm-yes").onclick = () => done(true);
      $("confirm-no").onclick = () => done(false);
      dialog.onclose = () => done(false);
      dialog.showModal();
      $("confirm-no").focus();
    });
  }

  function openForm(form, where) {
    state.form = { ...form, channel: where.channel, thread: where.thread ?? null };
    drawForm(form.html);
    const dialog = $("form-dialog");
    if (!dialog.open) dialog.showModal();
    focusForm();
  }

  function drawForm(html) {
    const body = $("form-body");
    body.innerHTML = html; // escaped on the server by cards/html.py
    const form = body.querySelector("form");
    if (!form) return;
    const submit = form.querySelector('button[type="submit"]');
    const actions = el("div", "dialog__actions");
    const cancel = el("button", "btn", "Cancel");
    cancel.type = "button";
    cancel.dataset.closeForm = "";
    actions.append(cancel);
    if (submit) actions.append(submit);
    form.append(actions);
  }

  function focusForm() {
    const body = $("form-body");
    const target = body.querySelector("[aria-invalid='true']") || body.querySelector("input:not([type=hidden]), select, textarea");
    if (target) target.focus();
  }

  async function submitForm(form) {
    const open = state.form;
    if (!open) return;
    const values = {};
    for (const [name, value] of new FormData(form)) if (name !== "_state") values[name] = String(value);
    const submit = form.querySelector('button[type="submit"]');
    if (submit) submit.disabled = true;
    try {
      const res = await api("/api/submit", {
        channel: open.channel,
        thread: open.thread,
        form_id: open.form_id,
        state: open.state,
        values,
        form: open.form,
      });
      if (res.kind === "errors") {
        if (res.form) {
          state.form = { ...res.form, channel: open.channel, thread: open.thread };
          drawForm(res.form.html);
        }
        focusForm();
        return;
      }
      closeForm();
      handleReply(res, open);
    } catch (err) {
      toast(err.message);
    } finally {
      if (submit) submit.disabled = false;
    }
  }

  function closeForm() {
    state.form = null;
    const dialog = $("form-dialog");
    if (dialog.open) dialog.close();
  }

  let toastTimer = null;
  function toast(text) {
    const box = $("toast");
    box.textContent = text;
    box.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => (box.hidden = true), 6000);
  }

  // ---------------------------------------------------------------- wiring

  function start() {
    const main = new Composer($("composer"), $("box"), $("hints"), () => null);
    const side = new Composer($("thread-composer"), $("thread-box"), $("thread-hints"), () => state.thread);

    document.addEventListener("click", (e) => {
      const t = e.target;
      const action = t.closest("button[data-action]");
      if (action) return press(action);
      const channel = t.closest("[data-channel]");
      if (channel) return switchChannel(channel.dataset.channel);
      const fill = t.closest("[data-fill]");
      if (fill) return main.fill(fill.dataset.fill);
      const thread = t.closest("[data-thread]");
      if (thread) return openThread(Number(thread.dataset.thread));
      const dismiss = t.closest("[data-dismiss]");
      if (dismiss) {
        state.dismissed.add(Number(dismiss.dataset.dismiss));
        state.messages.delete(Number(dismiss.dataset.dismiss));
        return dismiss.closest(".msg").remove();
      }
      if (t.closest("[data-close-form]")) return closeForm();
      // A click on a message that has a thread opens it (not on its buttons, links or selected text).
      const msg = t.closest("#messages .msg--has-thread");
      if (msg && !t.closest("button, a, input, select, textarea") && !String(getSelection())) {
        openThread(Number(msg.dataset.id));
      }
    });
    $("thread-close").addEventListener("click", closeThread);
    $("form-close").addEventListener("click", closeForm);
    $("form-dialog").addEventListener("close", () => (state.form = null));
    $("form-body").addEventListener("submit", (e) => {
      e.preventDefault();
      submitForm(e.target);
    });
    $("user-picker").addEventListener("change", (e) => switchUser(e.target.value));
    $("sign-out").addEventListener("click", () =>
      api("/auth/logout", {}).then(() => (location.href = "/auth/login"), (err) => toast(err.message)),
    );
    window.addEventListener("hashchange", () => switchChannel(decodeURIComponent(location.hash.slice(1))));
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && state.thread !== null && !document.querySelector("dialog[open]")) closeThread();
    });
    window.switchboard = { state, side }; // handy in the browser's devtools

    state.channel = decodeURIComponent(location.hash.slice(1)) || null;
    loadState(true)
      .then(() => {
        connect();
        $("box").focus();
      })
      .catch((err) => toast(err.message));
  }

  document.addEventListener("DOMContentLoaded", start);
})();
