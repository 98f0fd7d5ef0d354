// The chat page: keeps the conversation in memory and streams each reply from
// /v1/chat/completions (Server-Sent Events). Model text is only ever set with textContent.
// URL parameters prefill the settings: ?prompt=...&max_tokens=..&temperature=..&system=..;
// with prompt set, the message is sent as soon as the page has loaded.
"use strict";

const $ = (id) => document.getElementById(id);
const conversation = [];
let controller = null;

function headers() {
  const result = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) result.Authorization = "Bearer " + key;
  return result;
}

function showStatus(text) {
  $("status").textContent = text || "";
}

function setBusy(busy) {
  $("send").disabled = busy;
  $("stop").disabled = !busy;
}

async function loadModels() {
  try {
    const response = await fetch("/v1/models", { headers: headers() });
    if (!response.ok) throw new Error(await errorMessage(response));
    const select = $("model");
    select.replaceChildren();
    for (const model of (await response.json()).data) {
      const option = document.createElement("option");
      option.value = option.textContent = model.id;
      select.appendChild(option);
    }
    showStatus("");
  } catch (err) {
    showStatus("Cannot list models: " + err.message);
  }
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    return (body.error && body.error.message) || response.statusText;
  } catch (_) {
    return response.status + " " + response.statusText;
  }
}

function addMessage(role, text) {
  const box = document.createElement("div");
  box.className = "msg " + role;
  box.dataset.role = role;
  const who = document.createElement("div");
  who.className = "who";
  who.textContent = role;
  const content = document.createElement("div");
  content.className = "content";
  content.textContent = text;
  const meta = document.createElement("div");
  meta.className = "meta";
  box.append(who, content, meta);
  $("log").appendChild(box);
  box.scrollIntoView({ block: "end" });
  return box;
}

function requestBody() {
  const messages = [];
  const system = $("system").value.trim();
  if (system) messages.push({ role: "system", content: system });
  messages.push(...conversation);
  const body = { messages, stream: true, stream_options: { include_usage: true } };
  if ($("model").value) body.model = $("model").value;
  const maxTokens = parseInt($("max-tokens").value, 10);
  if (maxTokens > 0) body.max_tokens = maxTokens;
  const temperature = parseFloat($("temperature").value);
  if (temperature >= 0) body.temperature = temperature;
  return body;
}

// Reads the SSE stream, calling onEvent with each parsed JSON event; returns at [DONE].
async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data: ")) continue;
        const data = line.slice(6);
        if (data === "[DONE]") return;
        onEvent(JSON.parse(data));
      }
    }
  }
}

async function send(text) {
  conversation.push({ role: "user", content: text });
  addMessage("user", text);
  const box = addMessage("assistant", "");
  const content = box.querySelector(".content");
  const meta = box.querySelector(".meta");
  box.dataset.state = "streaming";
  controller = new AbortController();
  setBusy(true);
  showStatus("");
  const started = performance.now();
  let firstToken = null;
  let reply = "";
  try {
    const response = await fetch("/v1/chat/completions", {
      method: "POST", headers: headers(), body: JSON.stringify(requestBody()),
      signal: controller.signal,
    });
    if (!response.ok) throw new Error(await errorMessage(response));
    await readEvents(response, (event) => {
      if (event.error) throw new Error(event.error.message);
      for (const choice of event.choices || []) {
        const piece = choice.delta && choice.delta.content;
        if (piece) {
          if (firstToken === null) firstToken = performance.now();
          reply += piece;
          content.textContent = reply;
          box.scrollIntoView({ block: "end" });
        }
        if (choice.finish_reason) box.dataset.finish = choice.finish_reason;
      }
      if (event.usage) {
        const seconds = (performance.now() - started) / 1000;
        const ttft = firstToken === null ? 0 : (firstToken - started) / 1000;
        meta.textContent = `${event.usage.completion_tokens} tokens in ${seconds.toFixed(2)} s` +
          ` (first token ${ttft.toFixed(2)} s, finish: ${box.dataset.finish || "?"})`;
      }
    });
    box.dataset.state = "done";
  } catch (err) {
    if (err.name === "AbortError") {
      box.dataset.state = "stopped";
      meta.textContent = "stopped";
    } else {
      box.dataset.state = "error";
      showStatus(err.message);
    }
  } finally {
    conversation.push({ role: "assistant", content: reply });
    controller = null;
    setBusy(false);
    $("input").focus();
  }
}

function submit(event) {
  if (event) event.preventDefault();
  const text = $("input").value.trim();
  if (!text || controller) return;
  $("input").value = "";
  send(text);
}

function applyUrlParameters() {
  const params = new URLSearchParams(window.location.search);
  for (const [name, id] of [["max_tokens", "max-tokens"], ["temperature", "temperature"],
                            ["system", "system"]]) {
    if (params.has(name)) $(id).value = params.get(name);
  }
  return params.get("prompt");
}

$("form").addEventListener("submit", submit);
$("input").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) submit(event);
});
$("stop").addEventListener("click", () => controller && controller.abort());
$("clear").addEventListener("click", () => {
  if (controller) controller.abort();
  conversation.length = 0;
  $("log").replaceChildren();
});
$("api-key").value = localStorage.getItem("pagedllm-api-key") || "";
$("api-key").addEventListener("change", () => {
  localStorage.setItem("pagedllm-api-key", $("api-key").value.trim());
  loadModels();
});

const initialPrompt = applyUrlParameters();
loadModels().then(() => {
  if (initialPrompt) {
    $("input").value = initialPrompt;
    submit();
  }
});
