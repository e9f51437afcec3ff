"""charge-payment in Python, the port of examples/workers/charge-payment (rules in orders.py)."""
from multiagents_worker import Retryable, handler, log, state
from orders import payment_for, record, setting

@handler
def charge(call, order):
    if call.attempt <= setting("fail_attempts", 0):
        raise Retryable(f"payment gateway unavailable (simulated: attempt {call.attempt})")
    payments, key = state.open("payments"), f"payment/{call.transaction_id}"
    paid = payments.get_value(key)
    if paid is None:  # once per transaction, whatever the retries
        paid = record(payments, key, payment_for(call, order, setting("max_amount", 1000)))
        log.info(f"charged {paid['amount']} {paid['currency']} for order {order['id']}: {paid['payment_id']}")
    return {**order, "payment": paid}
