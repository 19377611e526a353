"""Services (writes) of coupon books and codes; each owns its transaction and writes its events inside it."""
