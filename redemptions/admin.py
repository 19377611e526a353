from django.contrib import admin

from .models import Redemption


@admin.register(Redemption)
class RedemptionAdmin(admin.ModelAdmin):
    list_display = ("redeemed_at", "code", "book", "user_id", "order_ref", "amount", "discount", "reversed_at")
    list_filter = ("book",)
    list_select_related = ("code", "book")
    raw_id_fields = ("code", "book", "tenant", "reservation")
    date_hierarchy = "redeemed_at"
    show_full_result_count = False
