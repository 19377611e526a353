from django.contrib import admin

from .models import Job


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "status", "tenant", "done", "total", "created_at", "finished_at")
    list_filter = ("kind", "status")
    list_select_related = ("tenant",)
    raw_id_fields = ("book", "tenant")
