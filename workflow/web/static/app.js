// consentflow dashboard: local times beside UTC, and the live processing log.
// Served from the site itself (the CSP allows nothing else). Applicant data is only
// ever set with textContent, never parsed as markup.
"use strict";

function addLocalTime(root) {
  for (const el of root.querySelectorAll("time[datetime]")) {
    if (el.querySelector(".local")) continue;
    const moment = new Date(el.getAttribute("datetime"));
    if (isNaN(moment)) continue;
    // The local time, and its date only when that differs from the UTC date shown.
    const sameDay = moment.getFullYear() === moment.getUTCFullYear()
      && moment.getMonth() === moment.getUTCMonth() && moment.getDate() === moment.getUTCDate();
    const options = { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false };
    if (!sameDay) Object.assign(options, { year: "numeric", month: "2-digit", day: "2-digit" });
    const local = document.createElement("span");
    local.className = "local";
    local.textContent = moment.toLocaleString(undefined, options) + " local";
    el.appendChild(local);
  }
}

function cell(row, text, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  td.textContent = text == null ? "" : String(text);
  row.appendChild(td);
  return td;
}

function utcText(iso) {
  const moment = new Date(iso);
  return moment.toISOString().slice(0, 19).replace("T", " ") + " UTC";
}

// As the server renders it (templates/_events.html): the kind, and a state change.
function eventWhat(event) {
  if (event.from_state && event.to_state) {
    return event.kind + ": " + event.from_state + " → " + event.to_state;
  }
  if (event.to_state && event.to_state !== event.kind) return event.kind + ": " + event.to_state;
  return event.kind;
}

function eventRow(event) {
  const row = document.createElement("tr");
  row.className = "new";
  row.dataset.id = String(event.id);
  const when = document.createElement("td");
  const time = document.createElement("time");
  time.setAttribute("datetime", event.at);
  time.textContent = utcText(event.at);
  when.appendChild(time);
  row.appendChild(when);
  const ref = document.createElement("td");
  if (event.reference) {
    const link = document.createElement("a");
    link.href = "/office/applications/" + encodeURIComponent(event.reference);
    link.textContent = event.reference;
    ref.appendChild(link);
  } else {
    ref.textContent = "–";
  }
  row.appendChild(ref);
  cell(row, event.actor);
  cell(row, eventWhat(event));
  cell(row, event.reason, "wrap");
  addLocalTime(row);
  return row;
}

function followLog(table) {
  const body = table.querySelector("tbody");
  const banner = document.getElementById("live-banner");
  const status = document.getElementById("live-status");
  const empty = document.getElementById("log-empty");
  let last = Number(table.dataset.lastId || "0");
  let source = null;
  let retryTimer = null;

  function setStatus(connected) {
    banner.classList.toggle("hidden", connected);
    status.textContent = connected ? status.dataset.live : status.dataset.down;
  }

  function connect() {
    retryTimer = null;
    // ?after= covers the first connection and our own reconnects; the browser's own
    // reconnects send Last-Event-ID, which the server prefers.
    source = new EventSource("/office/log/stream?after=" + last);
    source.addEventListener("open", () => setStatus(true));
    source.addEventListener("log", (message) => {
      const event = JSON.parse(message.data);
      if (event.id <= last) return; // never twice
      last = event.id;
      table.dataset.lastId = String(last);
      if (empty) empty.remove();
      body.prepend(eventRow(event));
      while (body.rows.length > 500) body.deleteRow(body.rows.length - 1);
    });
    source.addEventListener("error", () => {
      setStatus(false);
      // The browser retries by itself unless the stream was refused (CLOSED): then we
      // start a new one, from the last event we showed.
      if (source.readyState === EventSource.CLOSED && retryTimer === null) {
        retryTimer = setTimeout(connect, 2000);
      }
    });
  }
  connect();
}

document.addEventListener("DOMContentLoaded", () => {
  addLocalTime(document);
  const table = document.getElementById("log-table");
  if (table) followLog(table);
  // The online form sent back with problems: start at their list (each links to its field).
  const problems = document.getElementById("problems");
  if (problems) problems.focus();
});
