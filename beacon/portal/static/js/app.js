// The portal's page: the signing key (KeypairInfo), the job composer, the live job with its receipts
// verified here, the difference report, and recent activity. Everything rendered from the API goes
// in as text (model answers included), never as HTML.

import { api, ApiError, apiBase, loadConfig, setApiBase } from "./api.js";
import { generateKeypair, importSeed, signJobspec, stamp } from "./crypto.js";
import { forgetKeypair, loadKeypair, saveKeypair } from "./keystore.js";
import { verifyDocument, verifyReceipt, verifyReceiptInclusion } from "./verify.js";

const TERMINAL = new Set(["completed", "failed", "cancelled", "timed_out"]);
const POLL_MS = 750;

const $ = (selector) => document.querySelector(selector);

/** An element with attributes and children (strings become text nodes). */
function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value == null) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child != null) element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

function describeError(error) {
  if (error instanceof ApiError && error.problem) {
    const p = error.problem;
    return `${p.status ?? error.status} ${p.code ?? ""}: ${p.detail || p.title}`;
  }
  if (error instanceof TypeError) return `the API at ${apiBase()} cannot be reached from this page (${error.message})`;
  return error.message;
}

function problemView(error) {
  const p = error.problem;
  if (!(error instanceof ApiError) || !p) return h("p", { class: "problem" }, describeError(error));
  return h(
    "div",
    { class: "problem", "data-code": p.code ?? "" },
    h("p", {}, h("strong", {}, `${p.title || "Refused"} `), `(${p.status ?? error.status}, `, h("code", {}, p.code ?? "?"), ")"),
    p.detail ? h("p", {}, p.detail) : null,
    p.errors?.length ? h("ul", {}, p.errors.map((e) => h("li", {}, h("code", {}, e.path ?? ""), ` ${e.message ?? ""}`))) : null,
    p.request_id ? h("p", { class: "hint" }, "request id ", h("code", {}, p.request_id)) : null,
  );
}

function seconds(from, to) {
  if (!from || !to) return null;
  return (Date.parse(to) - Date.parse(from)) / 1000;
}

// --- signing key (KeypairInfo) -------------------------------------------------------------------

let keypair = null;

async function showKeypair() {
  const section = $("#keypair");
  $("#key-forget").disabled = !keypair;
  if (!keypair) {
    section.dataset.state = "none";
    $("#key-kid").textContent = "none";
    $("#key-public").textContent = "none";
    $("#key-storage").textContent = "none: generate or import a key to sign jobs";
    setTrust("none", "no key", "");
    return;
  }
  $("#key-kid").textContent = keypair.kid;
  $("#key-public").textContent = keypair.publicKeyB64;
  $("#key-storage").textContent =
    `${keypair.privateKey.extractable ? "EXTRACTABLE" : "non-extractable"} CryptoKey in this browser's IndexedDB ` +
    `(${keypair.source}, ${keypair.created_at})`;
  section.dataset.state = "checking";
  setTrust("checking", "checking…", "");
  try {
    const { data } = await api.keyTrust(keypair.publicKeyB64);
    const trusted = data.status === "trusted" && data.submit_allowed;
    setTrust(trusted ? "trusted" : data.status, trusted ? "trusted by the runner" : `not trusted (${data.status})`, data.reason || (data.kid ? `runner kid ${data.kid}` : ""));
    section.dataset.state = trusted ? "trusted" : "untrusted";
  } catch (error) {
    setTrust("error", "unknown", describeError(error));
    section.dataset.state = "error";
  }
}

function setTrust(status, label, detail) {
  const badge = $("#key-trust");
  badge.dataset.status = status;
  badge.textContent = label;
  $("#key-trust-detail").textContent = detail;
}

async function useKeypair(pair, source) {
  keypair = await saveKeypair(pair, source);
  await showKeypair();
}

// --- composer ---------------------------------------------------------------------------------------

async function loadQuestions() {
  const box = $("#questions");
  try {
    const { data } = await api.questions();
    box.replaceChildren(h("legend", {}, `Questions (set ${data.version ?? "?"})`));
    let count = 0;
    for (const [category, questions] of Object.entries(data.categories ?? {})) {
      const group = h("fieldset", { class: "category" }, h("legend", {}, category.replaceAll("_", " ")));
      for (const q of questions) {
        count += 1;
        group.append(
          h("label", { class: "question" },
            h("input", { type: "checkbox", name: "question", value: q.question_id, checked: count <= 2 }),
            h("code", {}, q.question_id), " ", q.question),
        );
      }
      box.append(group);
    }
    $("#composer").dataset.state = count ? "ready" : "empty";
    document.body.dataset.questions = String(count);
  } catch (error) {
    box.replaceChildren(h("legend", {}, "Questions"), h("p", { class: "problem", role: "alert" }, describeError(error)));
    $("#composer").dataset.state = "error";
  }
}

function composeJobspec() {
  const form = $("#job-form");
  const checked = (name) => [...form.querySelectorAll(`input[name=${name}]:checked`)].map((input) => input.value);
  const regions = checked("region");
  const questions = checked("question");
  const models = $("#models").value.split(",").map((m) => m.trim()).filter(Boolean);
  const id = `portal-${new Date().toISOString().slice(11, 19).replaceAll(":", "")}-${crypto.randomUUID().slice(0, 6)}`;
  const document_ = {
    id,
    version: "1",
    benchmark: { name: "bias-detection", container: { image: "beacon/bias-detection" } },
    constraints: { regions, min_regions: regions.length },
    questions,
    options: { max_tokens: Number($("#max-tokens").value) || 24, temperature: 0.0, seed: 42 },
  };
  if (models.length) document_.models = models;
  return stamp(document_);
}

async function submitJob(event) {
  event.preventDefault();
  const out = $("#submission");
  if (!keypair) {
    out.dataset.state = "refused";
    out.replaceChildren(h("p", { class: "problem" }, "Generate or import a signing key first."));
    return;
  }
  $("#submit").disabled = true;
  out.dataset.state = "submitting";
  out.replaceChildren(h("p", {}, "Signing and submitting…"));
  try {
    const signed = await signJobspec(composeJobspec(), keypair);
    const text = JSON.stringify(signed, null, 2);
    const key = crypto.randomUUID();
    $("#idempotency-key").textContent = key;
    $("#signed-json").textContent = text;
    const { status, data } = await api.submit(text, key);
    out.dataset.state = "accepted";
    out.replaceChildren(
      h("p", { class: "ok" }, h("strong", {}, `Accepted (${status})`), ` job `, h("code", {}, data.job_id ?? data.id),
        ` — ${data.executions ?? "?"} executions, signature scheme ${data.scheme ?? "?"}, key ${data.kid ?? "?"} (${data.key_status ?? "?"})`),
    );
    followJob(data.job_id ?? data.id);
  } catch (error) {
    out.dataset.state = "refused";
    out.replaceChildren(problemView(error));
  } finally {
    $("#submit").disabled = false;
  }
}

// --- live job -----------------------------------------------------------------------------------------

let currentJob = null;
let pollTimer = null;

function followJob(jobId) {
  clearTimeout(pollTimer);
  currentJob = { id: jobId, data: null };
  history.replaceState(null, "", `#job=${encodeURIComponent(jobId)}`);
  $("#job-id").textContent = jobId;
  $("#job").dataset.state = "following";
  $("#receipt-results").replaceChildren();
  $("#receipts").dataset.state = "none";
  poll();
}

async function poll() {
  const jobId = currentJob.id;
  try {
    const { data } = await api.job(jobId);
    if (currentJob.id !== jobId) return;
    currentJob.data = data;
    renderJob(data);
    if (TERMINAL.has(data.status)) {
      $("#job").dataset.state = data.status;
      $("#verify-all").disabled = !(data.executions ?? []).some((e) => e.receipt);
      loadDiff(jobId);
      loadRecent();
      return;
    }
  } catch (error) {
    $("#job-status").textContent = describeError(error);
  }
  pollTimer = setTimeout(poll, POLL_MS);
}

function renderJob(job) {
  const badge = $("#job-status");
  badge.textContent = job.status;
  badge.dataset.status = job.status;
  $("#job-timeline").replaceChildren(
    ...(job.timeline ?? []).map((e) => h("li", {}, h("span", { class: "badge", "data-status": e.status }, e.status), ` ${e.at}`)),
  );
  const rows = (job.executions ?? []).map((e) => {
    const latency = seconds(e.started_at, e.finished_at);
    return h("tr", { "data-execution": e.id, "data-status": e.status },
      h("th", { scope: "row" }, e.region, e.served_region && e.served_region !== e.region ? ` (served ${e.served_region})` : ""),
      h("td", {}, e.question_id),
      h("td", {}, e.model),
      h("td", {}, h("span", { class: "badge", "data-status": e.status }, e.status), e.error_code ? h("span", { class: "hint" }, ` ${e.error_code}`) : null),
      h("td", { class: "num" }, latency == null ? "–" : `${latency.toFixed(2)} s`),
      h("td", {}, e.receipt ? h("button", { type: "button", onclick: () => verifyOne(e) }, "Verify") : "–"),
    );
  });
  $("#job-executions tbody").replaceChildren(...rows);
}

// --- receipts ------------------------------------------------------------------------------------------

let trustAnchors = null;

async function anchors() {
  // The runner's receipt keys and the log's verifier key; fetched once per page.
  if (!trustAnchors) {
    const [{ data: keys }, { data: log }] = await Promise.all([api.runnerKeys(), api.logKeys()]);
    trustAnchors = { runnerKeys: keys.keys.map((k) => k.public_key), vkey: log.keys[0].vkey, origin: log.origin };
  }
  return trustAnchors;
}

async function verifyOne(execution) {
  const list = $("#receipt-results");
  const id = `receipt-${execution.id}`;
  list.querySelector(`#${CSS.escape(id)}`)?.remove();
  const item = h("li", { id, "data-verdict": "checking" }, `${execution.region} ${execution.question_id}: checking…`);
  list.append(item);
  const checks = [];
  let verdict = "valid";
  try {
    const { runnerKeys, vkey, origin } = await anchors();
    const receipt = execution.receipt;
    await verifyReceipt(receipt, runnerKeys);
    checks.push(`signature by runner key ${receipt.kid} ✓, receipt id and output hash ✓`);
    if (execution.leaf_index == null) throw new Error("the receipt has no transparency-log index yet");
    const { data: proof } = await api.proof(execution.leaf_index);
    const checkpoint = await verifyReceiptInclusion(receipt, proof, vkey, origin);
    checks.push(`included at leaf ${proof.index} of a checkpoint of size ${checkpoint.size} signed by ${origin} ✓`);
  } catch (error) {
    verdict = "invalid";
    checks.push(`✗ ${describeError(error)}`);
  }
  item.dataset.verdict = verdict;
  item.replaceChildren(
    h("span", { class: "badge", "data-status": verdict }, verdict === "valid" ? "verified" : "NOT VERIFIED"),
    ` ${execution.region} · ${execution.question_id} · `, h("code", {}, execution.receipt?.receipt_id ?? execution.id),
    h("ul", {}, checks.map((c) => h("li", {}, c))),
  );
  return verdict;
}

async function verifyAll() {
  const executions = (currentJob?.data?.executions ?? []).filter((e) => e.receipt);
  $("#receipts").dataset.state = "checking";
  $("#receipt-results").replaceChildren();
  const verdicts = [];
  for (const execution of executions) verdicts.push(await verifyOne(execution));
  $("#receipts").dataset.state = verdicts.length && verdicts.every((v) => v === "valid") ? "valid" : "invalid";
}

// --- difference report -----------------------------------------------------------------------------

const DIFF_TRIES = 30;

/**
 * The job's difference report. The list of reports says whether one exists yet ("pending" while it is
 * written, just after the job ends), so the page never asks for a report that is not there: every
 * 4xx a page causes is an error in the browser's console.
 */
async function loadDiff(jobId, tries = DIFF_TRIES) {
  const summary = $("#diff-summary");
  const section = $("#diff");
  section.dataset.state = "loading";
  try {
    const { data: list } = await api.diffs(50);
    const entry = list.diffs.find((d) => d.job_id === jobId);
    if (entry && entry.id == null) {
      if (tries > 1) {
        summary.textContent = "The difference report is being written…";
        setTimeout(() => loadDiff(jobId, tries - 1), 1000);
        return;
      }
      throw new Error(`the report of job ${jobId} is still pending`);
    }
    if (!entry && list.diffs.length === list.total) {
      section.dataset.state = "absent";
      summary.textContent = `Job ${jobId} has no difference report: it needs answers from at least two regions.`;
      $("#diff-items").replaceChildren();
      return;
    }
    const [{ data: report }, { data: job }] = await Promise.all([api.diff(jobId), api.job(jobId)]);
    renderDiff(report, job);
    let signed = "valid";
    try {
      await verifyDocument(report, (await anchors()).runnerKeys);
    } catch (error) {
      signed = "invalid";
      summary.append(h("span", { class: "problem" }, ` Report signature NOT VERIFIED: ${error.message}`));
    }
    if (signed === "valid") summary.append(h("span", { class: "badge", "data-status": "valid" }, "signed by the runner ✓"));
    section.dataset.signature = signed;
    section.dataset.state = "loaded";
  } catch (error) {
    section.dataset.state = error instanceof ApiError && error.status === 404 ? "absent" : "error";
    summary.textContent = describeError(error);
    $("#diff-items").replaceChildren();
  }
}

function renderDiff(report, job) {
  const outputs = Object.fromEntries((job.executions ?? []).map((e) => [e.id, e]));
  const regions = report.regions ?? [];
  $("#diff-summary").textContent =
    `Job ${report.job_id}: ${report.status}, regions ${regions.join(", ")}` +
    (report.recommendation?.text ? ` — ${report.recommendation.text} ` : " ");
  const tables = (report.items ?? []).map((item) => {
    const sim = item.similarity ?? {};
    const simRegions = sim.regions ?? [];
    const pairs = [];
    for (let i = 0; i < simRegions.length; i++) {
      for (let j = i + 1; j < simRegions.length; j++) {
        pairs.push(`${simRegions[i]}–${simRegions[j]} ${Number(sim.semantic?.[i]?.[j]).toFixed(2)}`);
      }
    }
    return h("table", { class: "diff", "data-question": item.question_id },
      h("caption", {}, h("code", {}, item.question_id), ` · ${item.model} · ${item.variant}`, item.category ? ` · ${item.category}` : ""),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, ""), regions.map((r) => h("th", { scope: "col" }, r)))),
      h("tbody", {},
        h("tr", {}, h("th", { scope: "row" }, "Answer"), regions.map((r) => {
          const cls = item.classes?.[r];
          const text = cls ? outputs[cls.execution_id]?.output : null;
          return h("td", { class: "answer" }, text ?? "–");
        })),
        h("tr", {}, h("th", { scope: "row" }, "Classification"), regions.map((r) => {
          const cls = item.classes?.[r];
          return h("td", {}, cls ? h("span", { class: "badge", "data-status": cls.label }, `${cls.label} (${Number(cls.confidence).toFixed(2)})`) : "–");
        })),
      ),
      h("tfoot", {}, h("tr", {}, h("th", { scope: "row" }, "Similarity"), h("td", { colspan: Math.max(1, regions.length) }, pairs.join(" · ") || "–"))),
    );
  });
  $("#diff-items").replaceChildren(...tables);
}

// --- recent activity -----------------------------------------------------------------------------------

async function loadRecent() {
  const section = $("#recent");
  try {
    const [{ data: executions }, { data: diffs }] = await Promise.all([api.executions(10), api.diffs(5)]);
    $("#recent-executions tbody").replaceChildren(
      ...executions.executions.map((e) =>
        h("tr", {}, h("td", {}, h("code", {}, e.id)), h("td", {}, e.job_id), h("td", {}, e.region), h("td", {}, e.question_id),
          h("td", {}, h("span", { class: "badge", "data-status": e.status }, e.status)))),
    );
    $("#recent-diffs").replaceChildren(
      ...diffs.diffs.map((d) =>
        h("li", {}, h("button", { type: "button", onclick: () => loadDiff(d.job_id) }, `Open ${d.job_id}`),
          ` ${d.status} · ${d.regions.join(", ")} · ${d.created_at}`)),
    );
    if (!diffs.diffs.length) $("#recent-diffs").append(h("li", {}, "No difference reports yet."));
    section.dataset.state = "loaded";
    document.body.dataset.executions = String(executions.executions.length);
    document.body.dataset.diffs = String(diffs.diffs.length);
  } catch (error) {
    section.dataset.state = "error";
    $("#recent-diffs").replaceChildren(h("li", { class: "problem" }, describeError(error)));
  }
}

// --- start -------------------------------------------------------------------------------------------

async function connect() {
  const out = $("#connection");
  trustAnchors = null;
  $("#api-base").value = apiBase();
  try {
    const { data } = await api.health();
    out.textContent = `${apiBase()}: runner ${data.version ?? "?"}, ${data.status}`;
    out.dataset.state = "connected";
  } catch (error) {
    out.textContent = describeError(error);
    out.dataset.state = "error";
  }
  await Promise.all([loadQuestions(), loadRecent(), showKeypair()]);
}

async function start() {
  await loadConfig();
  try {
    const stored = await loadKeypair();
    if (stored) keypair = stored;
  } catch (error) {
    $("#key-message").textContent = `The key store (IndexedDB) is unavailable: ${error.message}`;
  }
  $("#api-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      setApiBase($("#api-base").value);
      await connect();
    } catch (error) {
      $("#connection").textContent = error.message;
    }
  });
  $("#key-generate").addEventListener("click", async () => {
    await useKeypair(await generateKeypair(), "generated here");
    $("#key-message").textContent = "New keypair generated. Add its public key to the runner's TRUSTED_KEYS to submit.";
  });
  $("#key-forget").addEventListener("click", async () => {
    await forgetKeypair();
    keypair = null;
    await showKeypair();
    $("#key-message").textContent = "The key was removed from this browser.";
  });
  $("#key-import").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await useKeypair(await importSeed($("#key-seed").value), "imported seed");
      $("#key-message").textContent = "Seed imported as a non-extractable key.";
    } catch (error) {
      $("#key-message").textContent = `Not imported: ${error.message}`;
    } finally {
      $("#key-seed").value = "";
    }
  });
  $("#job-form").addEventListener("submit", submitJob);
  $("#verify-all").addEventListener("click", verifyAll);
  $("#recent-refresh").addEventListener("click", loadRecent);
  await connect();
  const linked = new URLSearchParams(window.location.hash.slice(1)).get("job"); // #job=<id>: follow that job
  if (linked) followJob(linked);
  document.body.dataset.ready = "true";
}

start();
