#!/usr/bin/env python3
"""Validate a klachtd corpus batch: python3 /tmp/corpus_check.py FILE"""
import sys, re, collections
KEYS_ALL = {"label", "lang", "register", "kind", "from", "subject"}
path = sys.argv[1]
text = open(path, encoding="utf-8").read()
recs = re.split(r"(?m)^=== ", text)
if recs[0].strip():
    sys.exit("text before the first record")
ids, counts, errs = set(), collections.Counter(), []
for r in recs[1:]:
    head, sep, body = r.partition("\n---\n")
    lines = head.split("\n")
    rid = lines[0].strip()
    if not sep: errs.append(f"{rid}: no --- line"); continue
    if rid in ids: errs.append(f"{rid}: duplicate id")
    ids.add(rid)
    kv = {}
    for l in lines[1:]:
        if not l.strip(): continue
        k, s, v = l.partition(":")
        if not s: errs.append(f"{rid}: bad header line {l!r}"); continue
        kv[k.strip()] = v.strip()
    miss = KEYS_ALL - kv.keys()
    lab = kv.get("label")
    if lab not in ("complaint", "borderline", "ordinary"): errs.append(f"{rid}: label {lab!r}")
    if kv.get("lang") not in ("nl", "en"): errs.append(f"{rid}: lang")
    if lab in ("complaint", "borderline"):
        miss |= {"category", "nature", "dates", "outcome", "concerns"} - kv.keys()
        if kv.get("category") not in ("coaching", "communicatie", "dienstverlening", "overig"): errs.append(f"{rid}: category")
        for k in ("nature", "dates", "outcome"):
            if kv.get(k) not in ("yes", "no"): errs.append(f"{rid}: {k}")
    if lab == "ordinary":
        miss |= {"hard"} - kv.keys()
        if kv.get("hard") not in ("yes", "no"): errs.append(f"{rid}: hard")
    if miss: errs.append(f"{rid}: missing {sorted(miss)}")
    if not re.search(r"<[^@\s]+@[^>\s]*example\.(nl|com|be|org)>", kv.get("from", "")): errs.append(f"{rid}: from must be Name <x@…example.nl|com|be|org>")
    if len(body.strip()) < 10: errs.append(f"{rid}: body too short")
    counts[(lab, kv.get("lang"), kv.get("hard", ""))] += 1
for e in errs: print("ERROR", e)
print("records:", len(ids))
for k, v in sorted(counts.items(), key=str): print(" ", k, v)
sys.exit(1 if errs else 0)
