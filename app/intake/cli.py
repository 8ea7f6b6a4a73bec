from flask.cli import AppGroup

nominations_cli = AppGroup("nominations", help="推荐对象导入。")
