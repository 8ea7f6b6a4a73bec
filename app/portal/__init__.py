"""The 推荐单位 portal: a nominating unit drafts, submits and follows its own 附件1 / 附件2 online."""
