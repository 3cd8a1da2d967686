"""Screenshot a run directory's report.html in headless Chromium (for the README):

    python scripts/screenshot_report.py runs/demo docs/report-demo.png [--height 2400]

Needs Debian's chromium + chromium-driver and selenium (the test extra)."""

import argparse
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=2400, help="at most this many pixels of the page")
    args = parser.parse_args()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    try:
        driver.set_window_size(args.width, 1000)
        driver.get((args.run_dir / "report.html").resolve().as_uri())
        height = driver.execute_script("return document.body.scrollHeight")
        driver.set_window_size(args.width, min(int(height) + 100, args.height))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(args.out))
    finally:
        driver.quit()
    print(args.out)


if __name__ == "__main__":
    main()
