// push_sdk.mjs: the API calls that speak4-sync makes for a file of Speak4 events, made through
// GHL's official Node SDK (@gohighlevel/api-client, pinned in package.json) instead. Run by
// bench/sdk_bench (which measures this process's CPU and peak RSS with wait4, as it does for the
// daemon); usable alone too:
//
//   node push_sdk.mjs --base-url http://127.0.0.1:PORT --token TOKEN --location ID \
//                     --events FILE.jsonl [--concurrency 4]
//
// Same endpoints and the same request bodies as the daemon (bench/sdk_bench compares them in
// the simulator's request log). Per-entity order as in the daemon: a task or note of a contact
// created in the same file waits for that contact's id. No durable queue, no mirror, no audit:
// this is the plain "call the SDK" baseline.
//
// Prints one line, "SDK_RESULT {json}": CPU (process.cpuUsage(), user+system, all threads) at the
// first line of this script (node's own start-up), after loading and constructing the SDK, and
// after the last call; peak RSS (process.resourceUsage().maxRSS, KiB); calls and failures.
import { readFileSync } from 'node:fs';

const cpuAtScriptStart = process.cpuUsage();
const t0 = performance.now();

function option(name, def) {
    const i = process.argv.indexOf(`--${name}`);
    if (i < 0 || i + 1 >= process.argv.length) {
        if (def === undefined)
            throw new Error(`--${name} is required`);
        return def;
    }
    return process.argv[i + 1];
}
const baseUrl = option('base-url');
const token = option('token');
const locationId = option('location');
const eventsFile = option('events');
const concurrency = Math.max(1, Number(option('concurrency', '4')));

const { HighLevel } = (await import('@gohighlevel/api-client')).default;
// The SDK has no base-URL option: the class reads this static when a client is constructed.
HighLevel.BASE_URL = baseUrl;
const ghl = new HighLevel({
    privateIntegrationToken: token,
    apiVersion: '2021-07-28', // the SDK's default (2023-02-21) is not in the contacts spec
    rateLimitRetry: { maxRetries: 5 }, // wait out a 429 instead of failing (none expected)
    logLevel: 'error',
});
const cpuReady = process.cpuUsage();
const rssReadyKiB = Math.round(process.memoryUsage.rss() / 1024);
const tReady = performance.now();

const events = readFileSync(eventsFile, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l));

// The body fields of a contact event: everything but the ids (what the daemon sends).
function contactFields(contact) {
    const { speak4_id: _s, ghl_id: _g, ...fields } = contact;
    return fields;
}

// speak4_id of a contact created in this file -> Promise of its GHL id.
const created = new Map();
function contactId(ref) {
    if (ref.ghl_id)
        return Promise.resolve(ref.ghl_id);
    const p = created.get(ref.speak4_id);
    if (!p)
        throw new Error(`contact ${ref.speak4_id} is neither created here nor named by ghl_id`);
    return p;
}

async function apply(ev) {
    switch (ev.type) {
    case 'contact.created': {
        const r = await ghl.contacts.createContact({ ...contactFields(ev.contact), locationId });
        return r.contact.id;
    }
    case 'contact.updated':
        await ghl.contacts.updateContact({ contactId: await contactId(ev.contact) },
                                         contactFields(ev.contact));
        return;
    case 'task.created': {
        const { speak4_id: _s, ...t } = ev.task;
        const body = { title: t.title, dueDate: new Date(t.dueDate).toISOString(),
                       completed: t.completed ?? false };
        if (t.body !== undefined)
            body.body = t.body;
        if (t.assignedTo !== undefined)
            body.assignedTo = t.assignedTo;
        await ghl.contacts.createTask({ contactId: await contactId(ev.contact) }, body);
        return;
    }
    case 'note.created': {
        const { speak4_id: _s, ...n } = ev.note;
        await ghl.contacts.createNote({ contactId: await contactId(ev.contact) }, n);
        return;
    }
    default:
        throw new Error(`push_sdk.mjs does not handle ${ev.type}`);
    }
}

let next = 0, calls = 0, failures = 0;
let firstError = null;
async function worker() {
    while (next < events.length) {
        const ev = events[next++];
        const p = apply(ev);
        if (ev.type === 'contact.created')
            created.set(ev.contact.speak4_id, p); // what a task or note of it waits for
        try {
            ++calls;
            await p;
        } catch (e) {
            ++failures;
            firstError ??= `${ev.type} ${ev.event_id ?? ''}: ${e?.message ?? e}`;
        }
    }
}
await Promise.all(Array.from({ length: concurrency }, worker));

const cpuEnd = process.cpuUsage();
const us = (c) => c.user + c.system;
const out = {
    events: events.length,
    calls,
    failures,
    first_error: firstError,
    concurrency,
    cpu_us_at_script_start: us(cpuAtScriptStart),
    cpu_us_sdk_ready: us(cpuReady),
    cpu_us_end: us(cpuEnd),
    cpu_us_calls: us(cpuEnd) - us(cpuReady),
    rss_kib_sdk_ready: rssReadyKiB,
    maxrss_kib: process.resourceUsage().maxRSS,
    wall_s_script: (performance.now() - t0) / 1000,
    wall_s_calls: (performance.now() - tReady) / 1000,
};
process.stdout.write(`SDK_RESULT ${JSON.stringify(out)}\n`);
// Keep-alive sockets would hold the event loop open for a while; the work is done.
process.exit(failures === 0 ? 0 : 1);
