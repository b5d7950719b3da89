-- Imported system.billing.list_prices rows; price = pricing.effective_list.default, else pricing.default.
SELECT
    account_id,
    sku_name,
    upper(cloud) AS cloud,
    currency_code,
    usage_unit,
    price_start_time,
    price_end_time,
    coalesce(effective_list_price, default_price) AS price
FROM list_prices
