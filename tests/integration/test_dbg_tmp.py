import re, pytest
from tests.integration.test_import_flow import *
def test_dbg(client, marketer, settings):
    settings.IMPORT_MAX_BYTES = 2_000_000
    catalog = CatalogFactory()
    client.force_login(marketer)
    content = lines("sku,title", *(f"S{i:07d},A product title long enough" for i in range(80_000)))
    response = _upload_page(client, catalog, "products", content, "big.csv")
    body = response.content.decode()
    print(len(content), re.findall(r'class="error[^>]*>.*?</', body, re.S), re.findall(r'errorlist.*?</ul>', body, re.S))
