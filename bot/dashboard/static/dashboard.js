// The dashboard's only script: dev mode's sign-in, a run page's live state (polled each second), and the
// buttons that change something (each a JSON POST with the session's CSRF token, as the console sends it).
(() => {
  "use strict";

  async function post(url, body) {
    const meta = document.querySelector('meta[name="csrf-token"]');
    const res = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": meta ? meta.content : "" },
      body: JSON.stringify(body || {}),
    });
    let data = {};
    try {
      data = await res.json();
    } catch (err) {
      data = { error: `The server answered ${res.status}.` };
    }
    if (!res.ok) throw new Error(data.error || `The server answered ${res.status}.`);
    return data;
  }

  function say(box, text, failed) {
    if (!box) return;
    box.textContent = text;
    box.classList.toggle("error", Boolean(failed));
  }

  // Run buttons: the buttons are redrawn by the live state, so one listener on their box.
  function setUpSteering(run) {
    const result = document.getElementById("action-result");
    document.getElementById("actions").addEventListener("click", async (e) => {
      const button = e.target.closest("button[data-steer]");
      if (!button) return;
      const choice = button.dataset.steer;
      if (choice !== "retry" && !confirm(`${button.textContent}: are you sure?`)) return;
      button.disabled = true;
      try {
        const data = await post(`/dashboard/runs/${encodeURIComponent(run.dataset.run)}/${choice}`);
        say(result, data.message, false);
        if (run.dataset.finished === "true") {
          run.dataset.finished = "false";
          follow(run); // a retried or rolled-back run moves again
        }
      } catch (err) {
        say(result, err.message, true);
      } finally {
        button.disabled = false;
      }
    });
  }

  async function devSignIn(user) {
    const res = await fetch("/auth/dev", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ user }),
    });
    if (!res.ok) throw new Error((await res.json()).error || `sign-in failed (${res.status})`);
    localStorage.setItem("switchboard.user", user);
    location.reload();
  }

  function setUpSignIn(form) {
    const select = form.querySelector("select");
    const remembered = localStorage.getItem("switchboard.user");
    if (remembered && [...select.options].some((o) => o.value === remembered)) select.value = remembered;
    const fail = (err) => {
      let note = form.querySelector("[role=alert]");
      if (!note) {
        note = document.createElement("p");
        note.setAttribute("role", "alert");
        form.append(note);
      }
      note.textContent = err.message;
    };
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      devSignIn(select.value).catch(fail);
    });
    devSignIn(select.value).catch(fail); // as the console does: sign in as the remembered or first user
  }

  function applyNodes(nodes) {
    for (const [step, node] of Object.entries(nodes)) {
      const g = document.querySelector(`.dag__node[data-step="${CSS.escape(step)}"]`);
      if (!g) continue;
      g.setAttribute("class", `dag__node dag__node--${node.status}`);
      const label = g.querySelector(".dag__state");
      if (label) label.textContent = node.label;
      const title = g.querySelector("title");
      if (title) title.textContent = `${step}: ${node.label}`;
    }
  }

  function follow(run) {
    const url = run.dataset.stateUrl;
    let busy = false;
    const timer = setInterval(async () => {
      if (busy) return;
      busy = true;
      try {
        const res = await fetch(url, { headers: { Accept: "application/json" } });
        if (!res.ok) {
          if (res.status === 401) location.reload(); // signed out: the page signs in again
          return;
        }
        const data = await res.json();
        applyNodes(data.nodes);
        for (const part of ["summary", "actions", "steps", "outputs", "events", "approvals"]) {
          const box = document.getElementById(part);
          if (box && box.innerHTML !== data[part]) box.innerHTML = data[part]; // server-escaped HTML
        }
        run.dataset.status = data.status;
        if (data.finished) {
          run.dataset.finished = "true";
          clearInterval(timer);
        }
      } catch (err) {
        // The server may be restarting: try again next second.
      } finally {
        busy = false;
      }
    }, 1000);
  }

  // A live box (the runs list's first page, the approvals, the queue): the page fetched again every few
  // seconds and the box's HTML swapped in; not while someone is typing or pressing a button in it.
  function refresh(box) {
    setInterval(async () => {
      if (box.contains(document.activeElement) && document.activeElement !== document.body) return;
      try {
        const res = await fetch(location.href, { headers: { Accept: "text/html" } });
        if (!res.ok) return;
        const fresh = new DOMParser().parseFromString(await res.text(), "text/html").getElementById(box.id);
        if (fresh && box.innerHTML !== fresh.innerHTML) box.innerHTML = fresh.innerHTML;
      } catch (err) {
        // The server may be restarting: try again later.
      }
    }, Number(box.dataset.refresh) * 1000);
  }

  // Approve, Request changes and Reject on the approvals page (with a form approval's fields): the decision
  // goes through chat's rules on the server.
  function setUpDecisions() {
    const result = document.getElementById("decide-result");
    document.addEventListener("submit", async (e) => {
      const form = e.target.closest("form[data-decide]");
      if (!form) return;
      e.preventDefault();
      const decision = e.submitter ? e.submitter.value : "approve";
      const buttons = [...form.querySelectorAll("button")];
      buttons.forEach((b) => (b.disabled = true));
      try {
        const fields = {};
        for (const input of form.querySelectorAll("[data-field]")) fields[input.dataset.field] = input.value;
        const data = await post(`/dashboard/approvals/${encodeURIComponent(form.dataset.decide)}/decide`, {
          decision,
          comment: form.elements.comment.value,
          fields,
        });
        say(result, data.message, false);
        form.closest("[data-approval]").remove(); // decided: the next refresh shows where it stands
      } catch (err) {
        say(result, err.message, true);
        buttons.forEach((b) => (b.disabled = false));
      }
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const box of document.querySelectorAll("[data-refresh][id]")) refresh(box);
    if (document.querySelector("form[data-decide]") || document.getElementById("decide-result")) setUpDecisions();
    const form = document.getElementById("dev-sign-in");
    if (form) setUpSignIn(form);
    const run = document.getElementById("run");
    if (run && run.dataset.finished !== "true") follow(run);
    if (run) setUpSteering(run);
  });
})();
