-- Each billing row priced: list_prices valid at usage_start_time (same SKU and cloud), else the rate card (exact SKU, then SKU family).
SELECT
    b.*,
    coalesce(lp.price, rc_sku.value, rc_family.value) AS price_per_dbu,
    CASE
        WHEN lp.price IS NOT NULL THEN 'list_prices'
        WHEN coalesce(rc_sku.value, rc_family.value) IS NOT NULL THEN 'rate_card'
    END AS price_source,
    b.usage_quantity * coalesce(lp.price, rc_sku.value, rc_family.value) AS cost
FROM stg_billing_usage AS b
LEFT JOIN stg_list_prices AS lp
    ON b.sku_name = lp.sku_name
    AND b.cloud = lp.cloud
    AND b.usage_unit = lp.usage_unit
    AND (b.account_id = lp.account_id OR b.account_id IS NULL OR lp.account_id IS NULL)
    AND lp.price_start_time <= b.usage_start_time
    AND (lp.price_end_time IS NULL OR b.usage_start_time < lp.price_end_time)
LEFT JOIN stg_rate_card AS rc_sku
    ON rc_sku.kind = 'sku' AND rc_sku.name = b.sku_name AND rc_sku.cloud = b.cloud
LEFT JOIN stg_rate_card AS rc_family
    ON rc_family.kind = 'sku' AND rc_family.name = b.sku_family
    AND rc_family.cloud = b.cloud
