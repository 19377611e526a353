from django.apps import AppConfig


class BooksConfig(AppConfig):
    name = "books"
    verbose_name = "Coupon books and codes"
