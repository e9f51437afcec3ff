"""charge-payment in Python: the port of examples/workers/charge-payment
(same input, output, state and errors, so the order saga runs the same)."""
from multiagents_worker import Fatal, Retryable, handler, log, state
from orders import setting, stable_id, total

@handler
def charge(call, order):
    if call.attempt <= setting("fail_attempts", 0):
        raise Retryable(f"payment gateway unavailable (simulated: attempt {call.attempt})")
    payments, key = state.open("payments"), f"payment/{call.transaction_id}"
    paid = payments.get_value(key)
    if paid is None:
        amount, limit = total(order), setting("max_amount", 1000)
        if amount > limit:
            raise Fatal(f"payment declined: order {order['id']} totals {amount} {order.get('currency', 'EUR')}, above the limit of {limit}")
        paid = {"payment_id": stable_id("pay_", call.transaction_id), "amount": amount, "currency": order.get("currency", "EUR")}
        payments.set_value(key, paid)
        payments.increment("stats/charges")
        payments.increment("stats/charged_amount", amount)
        log.info(f"charged {amount} {paid['currency']} for order {order['id']}: {paid['payment_id']}")
    return {**order, "payment": paid}
