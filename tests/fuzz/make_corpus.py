#!/usr/bin/env python3
"""Writes the seed corpora under tests/fuzz/corpus/<target>/ (run from anywhere; needs the
openssl CLI for the signed webhook seeds). The seeds are committed; rerun this after changing it.

fuzz_config seeds are the example configs in conf/ plus the small files below; fuzz_event seeds
are one valid event per type (DESIGN.md section 3) and a few near misses; fuzz_ghl_model seeds
are GHL response bodies in the shapes of ../shared/ghl-api.md, each after its selector byte;
fuzz_webhook seeds are webhooks signed with the fuzzer's fixed Ed25519 test key."""

import base64
import json
import os
import shutil
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")

# Must match ed25519_seed in fuzz_webhook.cpp.
ED25519_SEED = b"speak4-sync-fuzz-webhook-testkey"
assert len(ED25519_SEED) == 32


def reset(target):
    d = os.path.join(CORPUS, target)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def write(d, name, data):
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def compact(v):
    return json.dumps(v, separators=(",", ":"))


# --- fuzz_event ---------------------------------------------------------------------------------
def events():
    d = reset("fuzz_event")
    c = {"speak4_id": "s4-42"}
    seeds = {
        "contact_created": {"type": "contact.created", "event_id": "e-1",
                            "contact": {"speak4_id": "s4-42", "firstName": "Ada",
                                        "lastName": "Lovelace", "email": "ada@example.com",
                                        "phone": "+15551234567", "tags": ["vip"],
                                        "dateOfBirth": "1815-12-10", "country": "GB",
                                        "dnd": False,
                                        "customFields": {"Jx8aX2kWq0oHvZ3uLw1d": "87",
                                                         "Qp3mN8vR2sT6uW1yZ4aB": ["a", "b"]}},
                            "notes": [{"speak4_id": "n-1", "body": "Called, wants a demo",
                                       "title": "Call"}]},
        "contact_updated": {"type": "contact.updated", "event_id": "e-2",
                            "contact": {"speak4_id": "s4-42", "ghl_id": "ocQHyuzHvysMo5N5VsXc",
                                        "mobile": "+1 888-888-8888", "lead_score": 90,
                                        "email": None, "tags": []},
                            "notes": [{"speak4_id": "n-2", "body": "Line one\nline two"}],
                            "pull": True},
        "contact_updated_pull": {"type": "contact.updated", "contact": c, "pull": True},
        "contact_deleted": {"type": "contact.deleted", "contact": {"ghl_id": "ocQHyuzHvysMo5N5VsXc"}},
        "contact_opened": {"type": "contact.opened", "contact": c},
        "contact_tagged": {"type": "contact.tagged", "contact": c, "tags": ["vip", "speaker"]},
        "contact_untagged": {"type": "contact.untagged", "contact": c, "tags": ["vip"]},
        "note_created": {"type": "note.created", "contact": c,
                         "note": {"speak4_id": "n-3", "body": "Met at the conference",
                                  "title": "Conference"}},
        "note_updated": {"type": "note.updated", "contact": c,
                         "note": {"speak4_id": "n-3", "body": "Updated"}},
        "note_deleted": {"type": "note.deleted", "contact": c, "note": {"ghl_id": "n-ghl-1"}},
        "task_created": {"type": "task.created", "contact": c,
                         "task": {"speak4_id": "t-9", "title": "Send demo link", "body": "...",
                                  "dueDate": "2026-12-01T15:00:00Z", "completed": False,
                                  "assignedTo": "user000000000000001"}},
        "task_updated": {"type": "task.updated", "contact": c,
                         "task": {"speak4_id": "t-9", "dueDate": "2026-12-02T09:30:00.5+02:00"}},
        "task_completed": {"type": "task.completed", "contact": c,
                           "task": {"speak4_id": "t-9", "completed": True}},
        "task_deleted": {"type": "task.deleted", "contact": c, "task": {"ghl_id": "t-ghl-9"}},
        "lead_created": {"type": "lead.created", "event_id": "e-3",
                         "contact": {"speak4_id": "s4-43", "email": "k@example.com",
                                     "phone": "(555) 123.4567", "source": "website form"}},
        "reject_task_title": {"type": "task.created", "contact": c,
                              "task": {"speak4_id": "t-1", "dueDate": "2026-12-01"}},
        "reject_unknown_field": {"type": "contact.opened", "contact": c, "pull": True},
    }
    for name, ev in seeds.items():
        write(d, name + ".json", compact(ev))
    write(d, "reject_not_object.json", "[1,2,3]")
    write(d, "reject_deep.json", "[" * 40 + "]" * 40)


# --- fuzz_ghl_model -----------------------------------------------------------------------------
def ghl_model():
    d = reset("fuzz_ghl_model")
    contact = {"id": "ocQHyuzHvysMo5N5VsXc", "locationId": "ve9EPM428h8vShlRW1KT",
               "firstName": "Ada", "lastName": "Lovelace", "name": "Ada Lovelace",
               "email": "ada@example.com", "phone": "+15551234567", "dnd": False,
               "tags": ["vip", "newsletter"], "companyName": "Analytical Engines",
               "customFields": [{"id": "Jx8aX2kWq0oHvZ3uLw1d", "value": "87"},
                                {"id": "Qp3mN8vR2sT6uW1yZ4aB", "value": ["a", "b"]}],
               "dateOfBirth": "1990-09-25T00:00:00.000Z", "businessId": "641c094001436dbc2081e642",
               "dateAdded": "2021-07-02T05:18:26.704Z", "dateUpdated": "2021-07-02T05:18:26.704Z"}
    search_item = {"id": "VU1SPQwBqbfa1z9MyaDl", "locationId": "ve9EPM428h8vShlRW1KT",
                   "firstNameLowerCase": "ada", "email": "ada@example.com",
                   "dateAdded": 1736471515514, "dateUpdated": "2025-01-10T01:11:55.514Z",
                   "searchAfter": [1736471515514, "VU1SPQwBqbfa1z9MyaDl"]}
    list_item = {"id": "yd0jdjOavGk2o6Nh5Ndb", "locationId": "ve9EPM428h8vShlRW1KT",
                 "email": "ada@example.com", "dateAdded": "2021-09-08T07:59:09.919Z",
                 "customFields": [{"id": "Jx8aX2kWq0oHvZ3uLw1d", "value": 3}], "tags": []}
    task = {"id": "task00000000000000001", "title": "Send demo link", "body": "Share it",
            "assignedTo": "user000000000000001", "dueDate": "2020-10-25T11:00:00Z",
            "completed": False, "contactId": "ocQHyuzHvysMo5N5VsXc"}
    note = {"id": "note00000000000000001", "body": "Called", "userId": "user000000000000001",
            "dateAdded": "2021-07-08T12:02:11.285Z", "contactId": "ocQHyuzHvysMo5N5VsXc",
            "title": "Call", "color": "#FFAA00", "pinned": True}
    appt = {"id": "appt00000000000000001", "calendarId": "cal0000000000000001",
            "status": "booked", "title": "Demo", "assignedUserId": "user000000000000001",
            "notes": "", "startTime": "2021-07-16 11:00:00", "endTime": "2021-07-16 11:30:00",
            "locationId": "ve9EPM428h8vShlRW1KT", "contactId": "ocQHyuzHvysMo5N5VsXc",
            "appointmentStatus": "confirmed", "users": [],
            "dateAdded": "2021-07-16 10:00:00", "dateUpdated": "2021-07-16 10:00:00"}
    seeds = [
        ("contact_get", 0x30, {"contact": contact}),
        ("contact_put", 0x30, {"succeded": True, "contact": contact}),
        ("contact_duplicate_null", 0x30, {"contact": None}),
        ("search_page", 0x31, {"contacts": [search_item], "total": 1, "traceId": "t-1"}),
        ("search_page_full", 0x11,
         {"contacts": [dict(search_item, id="c%d" % i, searchAfter=[1736471515514 + i, "c%d" % i])
                       for i in range(7)], "total": 50}),
        ("list_page", 0x32, {"contacts": [list_item], "count": 1}),
        ("list_page_meta", 0x12,
         {"contacts": [list_item], "count": 50,
          "meta": {"total": 50, "startAfterId": "yd0jdjOavGk2o6Nh5Ndb",
                   "startAfter": 1631087949919, "currentPage": 2, "nextPage": 3, "prevPage": 1,
                   "nextPageUrl": "http://x/contacts/?startAfter=1631087949919"}}),
        ("tasks", 0x33, {"tasks": [task, dict(task, id="task2", completed=True)]}),
        ("task", 0x33, {"task": task}),
        ("notes", 0x34, {"notes": [note]}),
        ("note", 0x34, {"note": note}),
        ("appointments", 0x35, {"events": [appt, dict(appt, id="appt2",
                                                      startTime="2023-09-25T16:00:00+05:30")]}),
        ("tags", 0x36, {"tags": ["a", "b"]}),
        ("error_400", 0x07, {"statusCode": 400, "message": "Bad Request"}),
        ("error_400_duplicate", 0x07,
         {"statusCode": 400, "message": "This location does not allow duplicated contacts.",
          "meta": {"contactId": "ocQHyuzHvysMo5N5VsXc", "contactName": "Ada",
                   "matchingField": "email"}}),
        ("error_400_not_found", 0x07,
         {"statusCode": 400, "message": "Contact with id ocQHyuzHvysMo5N5VsXc not found"}),
        ("error_401", 0x17, {"statusCode": 401, "message": "Invalid token: access token is invalid",
                             "error": "Unauthorized"}),
        ("error_422", 0x67, {"statusCode": 422, "message": ["Unprocessable Entity", "x"],
                             "error": "Unprocessable Entity"}),
        ("error_429", 0x77, {"statusCode": 429, "message": "Too Many Requests", "traceId": "t"}),
    ]
    for name, sel, body in seeds:
        write(d, name, bytes([sel]) + compact(body).encode())
    write(d, "error_503_text", bytes([0xA7]) + b"<html>Service Unavailable</html>")
    headers = ("X-RateLimit-Limit-Daily: 200000\nX-RateLimit-Daily-Remaining: 199990\n"
               "X-RateLimit-Interval-Milliseconds: 10000\nX-RateLimit-Max: 100\n"
               "X-RateLimit-Remaining: 97\n")
    write(d, "headers_200", bytes([0x08]) + headers.encode())
    write(d, "headers_429_retry_after", bytes([0x38]) + (headers + "Retry-After: 30\n").encode())
    write(d, "headers_429_http_date",
          bytes([0x38]) + b"Retry-After: Thu, 01 Jan 2026 00:00:30 GMT\nX-RateLimit-Remaining: 0\n")


# --- fuzz_config --------------------------------------------------------------------------------
def config():
    d = reset("fuzz_config")
    shutil.copy(os.path.join(ROOT, "conf", "speak4-sync.toml"), os.path.join(d, "example.toml"))
    shutil.copy(os.path.join(ROOT, "conf", "demo.toml"), os.path.join(d, "demo.toml"))
    write(d, "minimal.toml", '[ghl]\nlocation_id = "ve9EPM428h8vShlRW1KT"\n')
    write(d, "oauth.toml", '[ghl]\nauth = "oauth"\nclient_id = "abc"\n'
          'client_secret_file = "ghl-client-secret"\nbase_url = "https://[::1]:8443/"\n'
          '[api]\nlisten = "[::1]:8737"\ntoken_file = "/etc/speak4-sync/api-token"\n'
          '[webhooks]\nenabled = true\npublic_key_file = "ghl-ed25519.pem"\nmax_age_seconds = 60\n')
    write(d, "errors.toml", '[sync]\nconflict = "mine"\nlist_mode = 3\n[retry]\nbase_ms = 900\n'
          'max_ms = 10\n[nope]\nx = 1\n')
    write(d, "invalid_toml.toml", '[ghl\nbase_url = "http://example.com"\n')


# --- fuzz_webhook -------------------------------------------------------------------------------
def ed25519_sign(body):
    # PKCS#8 DER of an Ed25519 private key: a fixed prefix and the 32-byte seed.
    der = bytes.fromhex("302e020100300506032b657004220420") + ED25519_SEED
    with tempfile.TemporaryDirectory() as tmp:
        key, msg = os.path.join(tmp, "key.der"), os.path.join(tmp, "msg")
        with open(key, "wb") as f:
            f.write(der)
        with open(msg, "wb") as f:
            f.write(body)
        sig = subprocess.run(["openssl", "pkeyutl", "-sign", "-rawin", "-keyform", "DER",
                              "-inkey", key, "-in", msg], check=True, capture_output=True).stdout
    return base64.b64encode(sig)


def webhook():
    d = reset("fuzz_webhook")
    ts = "2026-01-01T00:00:30.000Z"  # fuzz_now is 2026-01-01T00:00:00Z, max_age 300 s
    bodies = {
        "contact_update": {"type": "ContactUpdate", "locationId": "ve9EPM428h8vShlRW1KT",
                           "id": "ocQHyuzHvysMo5N5VsXc", "email": "ada@example.com",
                           "tags": ["vip"], "webhookId": "wh-1", "timestamp": ts},
        "contact_delete": {"type": "ContactDelete", "id": "ocQHyuzHvysMo5N5VsXc",
                           "webhookId": "wh-2", "timestamp": "2026-01-01T05:29:00+05:30"},
        "task_complete": {"type": "TaskComplete", "id": "task1", "contactId": "ocQHyuzHvysMo5N5VsXc",
                          "title": "Call", "webhookId": "wh-3", "timestamp": ts},
        "note_create": {"type": "NoteCreate", "id": "note1", "contactId": "ocQHyuzHvysMo5N5VsXc",
                        "body": "x", "webhookId": "wh-4", "timestamp": ts},
        "appointment_update": {"type": "AppointmentUpdate", "locationId": "ve9EPM428h8vShlRW1KT",
                               "appointment": {"id": "a1", "contactId": "ocQHyuzHvysMo5N5VsXc",
                                               "startTime": "2023-09-25T16:00:00+05:30"},
                               "webhookId": "wh-5", "timestamp": ts},
        "install": {"type": "INSTALL", "appId": "app1", "companyId": "co1", "webhookId": "wh-6",
                    "timestamp": ts},
        "stale": {"type": "ContactCreate", "id": "c1", "webhookId": "wh-7",
                  "timestamp": "2025-12-31T23:00:00Z"},
    }
    for name, b in bodies.items():
        body = compact(b).encode()
        sig = ed25519_sign(body)
        # A real x-ghl-signature, as GHL would send it.
        write(d, "ghl_signed_" + name, bytes([0x01]) + sig + b"\n\n" + body)
    body = compact(bodies["contact_update"]).encode()
    # Signed by the fuzzer itself with RSA (legacy header), and with Ed25519 over a changed body.
    write(d, "wh_fuzzer_signed", bytes([0x0A]) + b"\n\n" + body)
    write(d, "ghl_tampered", bytes([0x45]) + b"\n\n" + body)
    write(d, "ghl_bad_base64", bytes([0x01]) + b"not*base64\n\n" + body)
    write(d, "ghl_no_key", bytes([0x11]) + ed25519_sign(body) + b"\n\n" + body)
    write(d, "wh_wrong_length", bytes([0x02]) + b"\n" + base64.b64encode(b"x" * 64) + b"\n" + body)
    write(d, "missing", bytes([0x00]) + b"\n\n" + body)
    pem = ("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAi2HR1srL4o18O8BRa7gVJY7G7bupbN3H9AwJrHCDiOg=\n"
           "-----END PUBLIC KEY-----\n")
    write(d, "pem_ed25519", bytes([0x80]) + pem.encode())


if __name__ == "__main__":
    events()
    ghl_model()
    config()
    webhook()
