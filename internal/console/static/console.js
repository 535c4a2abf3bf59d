// Strata console: sends the forms marked class="api" to the JSON API,
// asks for confirmation in the page (no dialogs), and runs the live tail.
// Everything that comes from the server is set as text (textContent),
// never as HTML.
"use strict";

// formBody builds the JSON body of a form: data-type says how a field
// travels (int, ints, optional, headers); the button that submitted the
// form adds its name (dry_run=true).
function formBody(form, submitter) {
  const body = {};
  for (const el of form.elements) {
    if (!el.name || el.disabled || el.type === "submit" || el.type === "button") continue;
    const v = el.value;
    switch (el.dataset.type) {
      case "int":
        if (v === "") continue;
        body[el.name] = parseInt(v, 10);
        break;
      case "ints":
        if (v.trim() === "") continue;
        body[el.name] = v.split(",").map((s) => parseInt(s.trim(), 10));
        break;
      case "optional":
        if (v === "") continue;
        body[el.name] = v;
        break;
      case "headers":
        body[el.name] = v.split("\n").filter((l) => l.trim() !== "").map((l) => {
          const i = l.indexOf("=");
          return i < 0 ? { key: l.trim(), value: "" } : { key: l.slice(0, i).trim(), value: l.slice(i + 1) };
        });
        break;
      default:
        body[el.name] = v;
    }
  }
  if (submitter && submitter.name) body[submitter.name] = submitter.value === "true" ? true : submitter.value;
  return body;
}

// send posts body as JSON and shows the answer in the form's output.
async function send(form, body) {
  const out = form.querySelector("output");
  out.className = "";
  out.textContent = "…";
  let resp, data;
  try {
    resp = await fetch(form.dataset.action, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body),
    });
    data = await resp.json();
  } catch (e) {
    out.className = "error";
    out.textContent = String(e);
    return;
  }
  if (!resp.ok) {
    out.className = "error";
    out.textContent = data.error || resp.statusText;
    return;
  }
  if (form.dataset.goto && !body.dry_run) {
    const field = form.dataset.gotoField;
    location.assign(form.dataset.goto + (field ? encodeURIComponent(body[field]) : ""));
    return;
  }
  out.className = "ok";
  out.textContent = summary(data);
}

// summary writes an answer in a line or a few.
function summary(d) {
  if (typeof d.redriven === "number") return "Redrove " + d.redriven + " dead letters.";
  if (typeof d.offset === "number" && typeof d.partition === "number") return "Produced at partition " + d.partition + ", offset " + d.offset + ".";
  if (Array.isArray(d.partitions) && "dry_run" in d) {
    const lines = d.partitions.map((p) => "partition " + p.partition + ": " + (p.current < 0 ? "none" : p.current) + " → " + p.target +
      (p.delta ? " (" + (p.delta > 0 ? p.delta + " read again" : -p.delta + " skipped") + ")" : ""));
    const head = d.dry_run ? "Dry run, nothing changed:" : "Reset:";
    return [head].concat(lines, d.warning ? ["Warning: " + d.warning] : []).join("\n");
  }
  return JSON.stringify(d, null, 2);
}

// confirmBox asks in the page before a destructive action.
function confirmBox(form, body) {
  let box = form.querySelector(".confirm-box");
  if (box) box.remove();
  box = document.createElement("div");
  box.className = "confirm-box";
  const msg = document.createElement("p");
  const parts = [form.dataset.confirm];
  for (const k of Object.keys(body)) {
    parts.push(k + ": " + (typeof body[k] === "string" ? body[k] || "(any)" : JSON.stringify(body[k])));
  }
  msg.textContent = parts.join(" · ");
  const yes = document.createElement("button");
  yes.type = "button";
  yes.id = form.id + "-confirm";
  yes.textContent = "Confirm";
  const no = document.createElement("button");
  no.type = "button";
  no.textContent = "Cancel";
  yes.addEventListener("click", () => {
    box.remove();
    body.confirm = true;
    send(form, body);
  });
  no.addEventListener("click", () => box.remove());
  box.append(msg, yes, no);
  form.append(box);
}

for (const form of document.querySelectorAll("form.api")) {
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const body = formBody(form, e.submitter);
    if (form.dataset.confirm && !body.dry_run) {
      confirmBox(form, body);
      return;
    }
    send(form, body);
  });
}

// Live tail: long polls of the browse API from where the last answer
// ended, rows appended as text.
function cell(tr, text, cls) {
  const td = document.createElement("td");
  if (cls) td.className = cls;
  td.textContent = text;
  tr.append(td);
  return td;
}

function bytesCell(tr, r) {
  const td = document.createElement("td");
  if (r.null) {
    const s = document.createElement("span");
    s.className = "null";
    s.textContent = "null";
    td.append(s);
  } else {
    const pre = document.createElement("pre");
    pre.className = r.view;
    pre.textContent = r.text;
    td.append(pre);
  }
  tr.append(td);
}

function appendMessage(tbody, m) {
  const tr = document.createElement("tr");
  tr.className = "message tailed";
  cell(tr, String(m.partition));
  cell(tr, String(m.offset));
  cell(tr, m.time);
  bytesCell(tr, m.key);
  bytesCell(tr, m.value);
  const hd = document.createElement("td");
  for (const h of m.headers) {
    const div = document.createElement("div");
    div.textContent = h.key + ": " + h.value.text;
    hd.append(div);
  }
  tr.append(hd);
  tbody.prepend(tr);
}

const tailStart = document.getElementById("tail-start");
if (tailStart) {
  const stopBtn = document.getElementById("tail-stop");
  const status = document.getElementById("tail-status");
  const tbody = document.querySelector("#messages tbody");
  let running = false;
  let ctrl = null;
  stopBtn.addEventListener("click", () => {
    running = false;
    if (ctrl) ctrl.abort();
  });
  tailStart.addEventListener("click", async () => {
    running = true;
    tailStart.hidden = true;
    stopBtn.hidden = false;
    status.textContent = "tailing…";
    const d = tailStart.dataset;
    let resume = "";
    while (running) {
      const p = new URLSearchParams({ view: d.view || "text", wait_ms: "15000", limit: "200" });
      for (const k of ["partition", "key", "contains", "in"]) if (d[k]) p.set(k, d[k]);
      if (resume) p.set("resume", resume); else p.set("from", "end");
      ctrl = new AbortController();
      try {
        const resp = await fetch("/api/v1/topics/" + encodeURIComponent(d.topic) + "/messages?" + p, {
          credentials: "same-origin", headers: { Accept: "application/json" }, signal: ctrl.signal });
        const data = await resp.json();
        if (!resp.ok) {
          status.textContent = data.error || resp.statusText;
          break;
        }
        for (const m of data.records) appendMessage(tbody, m);
        resume = data.resume;
        status.textContent = "tailing… (at " + resume + ")";
      } catch (e) {
        if (running) status.textContent = String(e);
        break;
      }
    }
    running = false;
    tailStart.hidden = false;
    stopBtn.hidden = true;
    if (status.textContent.startsWith("tailing")) status.textContent = "stopped";
  });
}
