from django.contrib import admin

from .models import Code, CouponBook, Event, Reservation


@admin.register(CouponBook)
class CouponBookAdmin(admin.ModelAdmin):
    list_display = ("name", "tenant", "status", "discount_type", "discount_value", "uses_per_code", "created_at")
    list_filter = ("status", "tenant")
    list_select_related = ("tenant",)
    search_fields = ("name",)


@admin.register(Code)
class CodeAdmin(admin.ModelAdmin):
    list_display = ("code", "book", "state", "user_id", "redeemed_count", "max_uses", "created_at")
    list_filter = ("state",)
    list_select_related = ("book",)
    search_fields = ("=code", "=user_id")
    raw_id_fields = ("book", "tenant")
    show_full_result_count = False
    readonly_fields = ("shuffle", "created_at")


@admin.register(Reservation)
class ReservationAdmin(admin.ModelAdmin):
    list_display = ("code", "user_id", "status", "expires_at", "created_at")
    list_filter = ("status",)
    list_select_related = ("code",)
    raw_id_fields = ("code", "book", "tenant")
    show_full_result_count = False


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ("created_at", "kind", "code", "user_id", "actor_type", "actor_id")
    list_filter = ("kind",)
    list_select_related = ("code",)
    raw_id_fields = ("code", "book", "tenant", "reservation")
    show_full_result_count = False
