"""Drives the admin console in headless Chromium: logs in with the admin token, finds a model,
pins it from the console and sees the change, and keeps a screenshot.

Usage: console.py BASE_URL TOKEN MODEL SCREENSHOT_PATH
"""
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

base, token, model, shot = sys.argv[1:5]

opts = webdriver.ChromeOptions()
opts.binary_location = "/usr/bin/chromium"
for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--window-size=1280,1400"]:
    opts.add_argument(flag)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
# The tables are redrawn every two seconds: an element found just before a redraw goes stale.
wait = WebDriverWait(driver, 20, ignored_exceptions=(StaleElementReferenceException,))


def cell(d, row, i):
    """The text of cell `i` of `row`, or None while the table is being redrawn."""
    cells = d.find_elements(By.CSS_SELECTOR, row + " td")
    return cells[i].text if len(cells) > i else None


def click(row, action):
    """Clicks a row's action button, finding it again if a redraw replaced it."""
    wait.until(lambda d: d.find_element(
        By.CSS_SELECTOR, row + f' button[data-action="{action}"]').click() or True)


try:
    driver.get(base + "/admin/ui")
    # A wrong token is refused and the console stays hidden.
    driver.find_element(By.ID, "token").send_keys("wrong-token")
    driver.find_element(By.ID, "login-button").click()
    wait.until(lambda d: "refused" in d.find_element(By.ID, "login-error").text)
    assert not driver.find_element(By.ID, "console").is_displayed()

    driver.find_element(By.ID, "token").clear()
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.ID, "login-button").click()
    row = f'#models tr[data-model="{model}"]'
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, row)))
    stored = driver.execute_script("return sessionStorage.getItem('nfai_admin_token')")
    assert stored == token, "the token is kept in sessionStorage"
    wait.until(lambda d: cell(d, row, 2) == "ready")
    assert cell(driver, row, 7) == "no"

    click(row, "pin")
    wait.until(lambda d: cell(d, row, 7) == "yes")
    wait.until(lambda d: "pin " + model + ": done" in d.find_element(By.ID, "action-result").text)
    click(row, "unpin")
    wait.until(lambda d: cell(d, row, 7) == "no")

    # No sources are configured on this server: the section says so.
    wait.until(lambda d: "No [[retrieval.sources]]" in d.find_element(By.ID, "sources").text)

    # The memory table and a few chart points from /metrics.
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#memory tbody tr")))
    time.sleep(4.5)
    drawn = driver.execute_script(
        "const c = document.getElementById('throughput-chart');"
        "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n;")
    assert drawn > 0, "the throughput chart was drawn"
    driver.save_screenshot(shot)
    print("ok", shot)
finally:
    driver.quit()
