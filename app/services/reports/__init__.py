"""Documents that leave the building: the PDFs (WeasyPrint through app.pdf) and XLSX exports, the
catalog that names them, and the background job runner for the large ones."""
