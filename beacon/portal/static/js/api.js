// The runner's HTTP API from the browser. The API base is a setting (the portal may be served from
// another origin than the API's: the runner's CORS allowlist must then list the portal's origin).

const SETTING = "beacon.portal.apiBase";

/** An HTTP answer that is not 2xx, with the runner's RFC 9457 problem when it sent one. */
export class ApiError extends Error {
  constructor(status, problem, url) {
    super(problem?.detail || problem?.title || `HTTP ${status} from ${url}`);
    this.name = "ApiError";
    this.status = status;
    this.problem = problem;
    this.url = url;
  }
}

let configured = "";

/** Read the portal's config.json (its server's default API base) once, at start. */
export async function loadConfig() {
  try {
    const response = await fetch("config.json", { cache: "no-store" });
    if (response.ok) configured = (await response.json()).api_base || "";
  } catch {
    configured = "";
  }
  return { apiBase: apiBase(), configured };
}

/** The API base in use: the user's setting, else the served default, else this page's own origin. */
export function apiBase() {
  return (localStorage.getItem(SETTING) || configured || window.location.origin).replace(/\/+$/, "");
}

export function setApiBase(value) {
  const text = value.trim();
  if (text) {
    const url = new URL(text); // throws on a malformed URL
    if (!["http:", "https:"].includes(url.protocol)) throw new Error("the API base is an http(s) URL");
    localStorage.setItem(SETTING, url.href.replace(/\/+$/, ""));
  } else {
    localStorage.removeItem(SETTING);
  }
  return apiBase();
}

async function request(method, path, { body, headers } = {}) {
  const url = apiBase() + path;
  const init = { method, headers: { Accept: "application/json, application/problem+json", ...headers } };
  if (body !== undefined) {
    init.body = body;
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(url, init);
  const type = response.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) throw new ApiError(response.status, typeof data === "object" ? data : null, url);
  return { status: response.status, data, headers: response.headers };
}

export const api = {
  health: () => request("GET", "/health"),
  questions: () => request("GET", "/api/v1/questions"),
  executions: (limit = 10) => request("GET", `/api/v1/executions?limit=${limit}`),
  diffs: (limit = 5) => request("GET", `/api/v1/diffs?limit=${limit}`),
  diff: (jobId) => request("GET", `/api/v1/diffs/${encodeURIComponent(jobId)}`),
  job: (jobId) => request("GET", `/api/v1/jobs/${encodeURIComponent(jobId)}?include=executions`),
  runnerKeys: () => request("GET", "/api/v1/keys"),
  keyTrust: (publicKeyB64) => request("GET", `/api/v1/keys/trust?public_key=${encodeURIComponent(publicKeyB64)}`),
  logKeys: () => request("GET", "/api/v1/transparency/keys"),
  proof: (index) => request("GET", `/api/v1/transparency/proof?index=${index}`),
  /** POST the exact bytes that were signed over, with an Idempotency-Key. */
  submit: (text, idempotencyKey) =>
    request("POST", "/api/v1/jobs", { body: text, headers: { "Idempotency-Key": idempotencyKey } }),
};
