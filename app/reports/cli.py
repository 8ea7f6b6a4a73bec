from flask.cli import AppGroup

reports_cli = AppGroup("reports", help="导出 PDF 与 XLSX。")
