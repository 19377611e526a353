#!/usr/bin/env bash
# The integrator guide as one script (README "Integrator guide" shows it verbatim; api/tests/test_integrator_guide.py
# runs it against a live server). Needs bash, curl and python3. Set API, CLIENT_ID and CLIENT_SECRET first:
#   API=http://127.0.0.1:8000/api/v1 CLIENT_ID=cli_… CLIENT_SECRET=… bash docs/integrator_guide.sh
set -euo pipefail
: "${API:?the API root, e.g. http://127.0.0.1:8000/api/v1}" "${CLIENT_ID:?}" "${CLIENT_SECRET:?}"

# One field of a JSON answer: echo "$ANSWER" | field results.0.code   (jq -r .results[0].code does the same)
field() { python3 -c 'import json, sys
value = json.load(sys.stdin)
for key in sys.argv[1].split("."):
    value = value[int(key)] if isinstance(value, list) else value[key]
print(value)' "$1"; }
# curl that fails (exit 22) on an error answer, after printing its {"error": {"code", "message", "details"}}
call() { curl -sS --fail-with-body "$@"; }

# 2. A token: the access token lasts 15 minutes, the refresh token 24 hours.
TOKENS=$(call -X POST "$API/auth/token/" -H 'Content-Type: application/json' \
  -d "{\"client_id\": \"$CLIENT_ID\", \"client_secret\": \"$CLIENT_SECRET\"}")
TOKEN=$(echo "$TOKENS" | field access)
call -X POST "$API/auth/token/refresh/" -H 'Content-Type: application/json' \
  -d "{\"refresh\": \"$(echo "$TOKENS" | field refresh)\"}" >/dev/null
AUTH=(-H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json')

# 3. A book: 10 % off, active now, up to two codes and two redemptions per customer (the default is one of each).
BOOK=$(call "${AUTH[@]}" -X POST "$API/books/" \
  -d '{"name": "Spring sale", "status": "active", "discount_value": "10", "max_codes_per_user": 2, "max_redemptions_per_user": 2}' \
  | field id)

# Codes: generate them (pattern: # a digit, ? a letter, * a charset symbol), or upload your own list or file.
GENERATED=$(call "${AUTH[@]}" -X POST "$API/books/$BOOK/codes/generate/" -d '{"count": 5000, "pattern": "SPRING-********"}')
# Above 10,000 codes (COUPONS_SYNC_CODES_LIMIT) the answer is 202 with a job: poll it until it has ended.
if echo "$GENERATED" | grep -q '"status"'; then
  JOB=$(echo "$GENERATED" | field id)
  until [[ $(call "${AUTH[@]}" "$API/jobs/$JOB/" | field status) =~ ^(succeeded|failed)$ ]]; do sleep 1; done
fi
call "${AUTH[@]}" -X POST "$API/books/$BOOK/codes/upload/" -d '{"codes": ["VIP-001", "VIP-002"], "skip_duplicates": true}'
printf 'code\nVIP-003\nVIP-004\n' > codes.csv
call -H "Authorization: Bearer $TOKEN" -X POST "$API/books/$BOOK/codes/upload/" -F file=@codes.csv   # or codes.xlsx

# Give a customer a random free code of the book, and a named one.
call "${AUTH[@]}" -X POST "$API/books/$BOOK/assign/" -d '{"user_id": "customer-42"}'
call "${AUTH[@]}" -X POST "$API/codes/VIP-001/assign/" -d '{"user_id": "customer-42"}'

# At checkout: validate (changes nothing), lock while the customer pays, then redeem with the lock's token.
# An order amount always goes with its currency (ISO 4217): a book with a currency of its own refuses another.
# A book with campaign limits answers 409 book_redemption_limit_reached, book_budget_exhausted, order_below_minimum
# or order_amount_required (validate gives the same as its `reason`): show the customer the offer is over or how.
call "${AUTH[@]}" "$API/codes/VIP-001/validate/?user_id=customer-42&amount=80.00&currency=EUR"
LOCK=$(call "${AUTH[@]}" -X POST "$API/codes/VIP-001/lock/" -d '{"user_id": "customer-42", "ttl_seconds": 600}' | field token)
# Checkout abandoned: release the lock at once (it would also lapse at its expires_at).
call "${AUTH[@]}" -X POST "$API/codes/VIP-001/unlock/" -d "{\"user_id\": \"customer-42\", \"token\": \"$LOCK\"}"
# The customer comes back and pays: lock again, and redeem with an Idempotency-Key, so a retry never redeems twice.
LOCK=$(call "${AUTH[@]}" -X POST "$API/codes/VIP-001/lock/" -d '{"user_id": "customer-42", "ttl_seconds": 600}' | field token)
REDEEM="{\"user_id\": \"customer-42\", \"token\": \"$LOCK\", \"order_ref\": \"order-1001\", \"amount\": \"80.00\", \"currency\": \"EUR\"}"
REDEMPTION=$(call "${AUTH[@]}" -X POST "$API/codes/VIP-001/redeem/" -H 'Idempotency-Key: order-1001-redeem' -d "$REDEEM" | field id)
# The same request again (a retry after a timeout, say) replays the first answer, marked Idempotent-Replayed: true.
call "${AUTH[@]}" -X POST "$API/codes/VIP-001/redeem/" -H 'Idempotency-Key: order-1001-redeem' -d "$REDEEM" -D - -o /dev/null \
  | grep -i '^Idempotent-Replayed: true'

# The customer's codes, the redemption log (filters: book, user_id, from, to, reversed), its Excel export.
call "${AUTH[@]}" "$API/users/customer-42/codes/?book=$BOOK"
call "${AUTH[@]}" "$API/redemptions/?book=$BOOK&from=$(date -u +%Y-%m-01)&to=$(date -u +%Y-%m-%d)"
call -H "Authorization: Bearer $TOKEN" -o redemptions.xlsx "$API/redemptions/export/?book=$BOOK"
# A refund: the use goes back to the code; the redemption stays in the log, marked reversed.
call "${AUTH[@]}" -X POST "$API/redemptions/$REDEMPTION/reverse/" -d '{"reason": "order returned"}'

# End users (your customers' own apps) call with tokens of your login service, signed with a key you register:
# HS256, a shared secret of 32 characters or more (or RS256 with the login service's RSA public key, PEM).
SECRET=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
KID=$(call "${AUTH[@]}" -X POST "$API/end-user-keys/" -d "{\"name\": \"Shop login\", \"algorithm\": \"HS256\", \"key\": \"$SECRET\"}" \
  | field kid)
call "${AUTH[@]}" -X DELETE "$API/end-user-keys/$KID/"   # revoke: its tokens stop working at once
echo "guide complete: book $BOOK, redemption $REDEMPTION (reversed), redemptions.xlsx written"
